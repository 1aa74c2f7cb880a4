"""Personal API keys from the account page: shown once, work at the gateway, need a
recent second factor, revocable by their owner only."""

from __future__ import annotations

import re

import httpx

from bastion.gateway.app import GatewayApp
from tests.identity._flows import enrol_totp, password_login
from tests.oauth._helpers import browser, hidden


async def test_create_use_and_revoke_a_personal_key(app: GatewayApp, issuer: str) -> None:
    agent = browser(app, issuer)
    await password_login(agent)
    page = await agent.get("/oauth2/account")
    form = {"csrf": hidden(page.text, "csrf"), "name": "ci", "days": "30"}
    made = await agent.post("/oauth2/account/api-keys", data=form)
    assert made.status_code == 200
    match = re.search(r'id="api-key">([^<]+)<', made.text)
    key_id = re.search(r"id <code>([^<]+)</code>", made.text)
    assert match
    assert key_id
    key = match.group(1)
    api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=issuer)
    used = await api.get("/api/orders", headers={"x-api-key": key})
    assert used.status_code == 200
    account = await agent.get("/oauth2/account")
    assert key not in account.text  # shown once
    assert f'name="key_id" value="{key_id.group(1)}"' in account.text
    form = {"csrf": hidden(account.text, "csrf"), "key_id": key_id.group(1)}
    revoked = await agent.post("/oauth2/account/api-keys/revoke", data=form)
    assert revoked.status_code == 303
    assert key_id.group(1) not in (await agent.get("/oauth2/account")).text
    await api.aclose()


async def test_a_password_only_session_must_step_up(app: GatewayApp, issuer: str) -> None:
    agent = browser(app, issuer)
    await password_login(agent)
    await enrol_totp(agent)  # now alice has a factor; this session is password-only
    page = await agent.get("/oauth2/account")
    made = await agent.post("/oauth2/account/api-keys", data={"csrf": hidden(page.text, "csrf")})
    assert made.status_code == 303
    assert "/oauth2/login?tx=" in made.headers["location"]
