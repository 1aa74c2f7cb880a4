"""The passkey JSON endpoints refuse cross-origin calls, missing CSRF headers and
replayed or absent challenges (the ceremonies themselves run in tests/e2e)."""

from __future__ import annotations

import json

from bastion.gateway.app import GatewayApp
from tests.identity._flows import password_login
from tests.oauth._helpers import browser, hidden


async def test_options_need_same_origin_and_the_csrf_header(app: GatewayApp, issuer: str) -> None:
    agent = browser(app, issuer)
    page = await agent.get("/oauth2/login/passkey")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    csrf = page.text.split('data-csrf="', 1)[1].split('"', 1)[0]
    url = "/oauth2/login/passkey/options"
    good = {"content-type": "application/json", "origin": issuer, "x-csrf-token": csrf}
    for headers in (
        {**good, "origin": "https://evil.example"},
        {k: v for k, v in good.items() if k != "origin"},
        {**good, "x-csrf-token": "wrong"},
        {**good, "content-type": "text/plain"},
    ):
        assert (await agent.post(url, content=b"{}", headers=headers)).status_code == 400
    options = await agent.post(url, content=b"{}", headers=good)
    assert options.status_code == 200
    body = options.json()
    assert body["userVerification"] == "required"
    assert body["allowCredentials"] == []  # discoverable: no username asked
    assert body["rpId"] == "127.0.0.1"
    response = {"clientDataJSON": "", "authenticatorData": "", "signature": ""}
    fake = {"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": response}
    verify = "/oauth2/login/passkey/verify"
    first = await agent.post(verify, content=json.dumps({"credential": fake}), headers=good)
    assert first.status_code == 400
    assert first.json()["error"] == "passkey_refused"


async def test_adding_a_passkey_needs_a_recent_login(app: GatewayApp, issuer: str) -> None:
    agent = browser(app, issuer)
    assert (await agent.get("/oauth2/account/passkeys")).status_code == 303  # not signed in
    await password_login(agent)
    page = await agent.get("/oauth2/account/passkeys")
    assert page.status_code == 200
    assert 'data-passkey="register"' in page.text
    csrf = hidden((await agent.get("/oauth2/account")).text, "csrf")
    headers = {"content-type": "application/json", "origin": issuer, "x-csrf-token": csrf}
    options = (await agent.post("/oauth2/account/passkeys/options", content=b"{}",
                                headers=headers)).json()  # fmt: skip
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["user"]["id"] != "alice"  # a random handle, not the username
