"""TOTP enrolment, the second-factor login step, recovery codes, single use, throttling,
acr/amr in tokens, step-up via acr_values (in-process, over HTTP)."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from bastion.gateway.app import GatewayApp
from bastion.identity import totp
from tests.identity._flows import (
    enrol_totp,
    next_code,
    password_login,
    second_factor,
)
from tests.oauth._helpers import REDIRECT, Clients, browser, follow_to_client, hidden, pkce

MFA = "urn:bastion:acr:mfa"


async def _enrolled(app: GatewayApp, issuer: str) -> tuple[httpx.AsyncClient, str, list[str]]:
    agent = browser(app, issuer)
    first = await password_login(agent)
    assert first.status_code == 303
    assert first.headers["location"].endswith("/oauth2/account")
    secret, codes = await enrol_totp(agent)
    return agent, secret, codes


async def test_enrolment_shows_qr_and_recovery_codes_once(app: GatewayApp, issuer: str) -> None:
    agent = browser(app, issuer)
    await password_login(agent)
    page = await agent.get("/oauth2/account/totp")
    assert "<svg" in page.text
    assert "<script" not in page.text
    assert "script-src" not in page.headers["content-security-policy"]
    # An unconfirmed secret does not count: the next login asks for no code.
    other = browser(app, issuer)
    assert (await password_login(other)).headers["location"].endswith("/oauth2/account")
    wrong = await agent.post("/oauth2/account/totp", data={"csrf": hidden(page.text, "csrf"),
                                                           "code": "000000"})  # fmt: skip
    assert wrong.status_code == 400
    secret, codes = await enrol_totp(agent)
    assert len(codes) == 10
    assert len(set(codes)) == 10
    account = await agent.get("/oauth2/account")
    assert "10 unused" in account.text
    assert not any(code in account.text for code in codes)  # shown once, never again
    assert secret not in account.text


async def test_login_asks_for_the_code_and_each_code_works_once(
    app: GatewayApp, issuer: str
) -> None:
    _, secret, _ = await _enrolled(app, issuer)
    agent = browser(app, issuer)
    first = await password_login(agent)
    assert first.status_code == 303
    assert "/oauth2/login?tx=" in first.headers["location"]
    # The password alone gives no session yet.
    assert (
        (await agent.get("/oauth2/account"))
        .headers["location"]
        .startswith(f"{issuer}/oauth2/login")
    )
    first = await password_login(agent)
    wrong = await second_factor(agent, first.headers["location"], "123456")
    assert wrong.status_code == 401
    assert "That code is not right" in wrong.text
    code = next_code(secret)
    done = await second_factor(agent, first.headers["location"], code)
    assert done.status_code == 303
    assert done.headers["location"].endswith("/oauth2/account")
    assert "set-cookie" in done.headers  # a new session id
    account = await agent.get("/oauth2/account")
    assert "two-step verified" in account.text
    # The same code in another browser is refused (RFC 6238 §5.2).
    thief = browser(app, issuer)
    again = await password_login(thief)
    replay = await second_factor(thief, again.headers["location"], code)
    assert replay.status_code == 401


async def test_recovery_codes_work_once(app: GatewayApp, issuer: str) -> None:
    _, _, codes = await _enrolled(app, issuer)
    for attempt, expected in ((codes[0].upper().replace("-", " "), 303), (codes[0], 401)):
        agent = browser(app, issuer)
        first = await password_login(agent)
        response = await second_factor(agent, first.headers["location"], attempt, "recovery")
        assert response.status_code == expected, response.text


async def test_code_guessing_is_throttled(app: GatewayApp, issuer: str) -> None:
    _, secret, _ = await _enrolled(app, issuer)
    # From an address alice never signed in from (her own is not held back: lockout.py).
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    agent = httpx.AsyncClient(transport=transport, base_url=issuer)
    first = await password_login(agent)
    statuses = []
    for _ in range(12):
        statuses.append(
            (await second_factor(agent, first.headers["location"], "000000")).status_code
        )
    assert 429 in statuses
    assert set(statuses) <= {401, 429}
    blocked = await second_factor(agent, first.headers["location"], next_code(secret))
    assert blocked.status_code == 429  # even the right code, while blocked


async def test_tokens_carry_mfa_acr_and_amr(app: GatewayApp, issuer: str, clients: Clients) -> None:
    _agent, secret, _ = await _enrolled(app, issuer)
    reg = await clients.web(skip_consent=True)
    verifier, challenge = pkce()
    fresh = browser(app, issuer)
    params = {"response_type": "code", "client_id": reg.client_id, "redirect_uri": REDIRECT,
              "scope": "openid", "state": "s", "code_challenge": challenge,
              "code_challenge_method": "S256"}  # fmt: skip
    start = await fresh.get("/oauth2/authorize?" + urlencode(params))
    login_page = await fresh.get(start.headers["location"])
    posted = await fresh.post("/oauth2/login", data={
        "csrf": hidden(login_page.text, "csrf"), "tx": hidden(login_page.text, "tx"),
        "username": "alice", "password": "correct horse battery staple"})  # fmt: skip
    done = await second_factor(fresh, posted.headers["location"], next_code(secret))
    query = await follow_to_client(fresh, done)
    tokens = await _exchange(clients, reg, query["code"], verifier)
    claims = _id_claims(clients, tokens["id_token"])
    assert claims["acr"] == MFA
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert isinstance(claims["auth_time"], int)


async def test_acr_values_steps_up_a_password_session(
    app: GatewayApp, issuer: str, clients: Clients
) -> None:
    # alice signed in with her password, then enrolled TOTP: the session is password-only.
    agent, secret, _ = await _enrolled(app, issuer)
    reg = await clients.web(skip_consent=True)
    verifier, challenge = pkce()
    params = {"response_type": "code", "client_id": reg.client_id, "redirect_uri": REDIRECT,
              "scope": "openid", "state": "s", "code_challenge": challenge,
              "code_challenge_method": "S256", "acr_values": MFA}  # fmt: skip
    start = await agent.get("/oauth2/authorize?" + urlencode(params))
    assert start.status_code == 303
    assert "/oauth2/login?tx=" in start.headers["location"]
    before = agent.cookies.get("bastion-session")
    done = await second_factor(agent, start.headers["location"], next_code(secret))
    assert agent.cookies.get("bastion-session") != before  # rotated at step-up
    query = await follow_to_client(agent, done)
    tokens = await _exchange(clients, reg, query["code"], verifier)
    claims = _id_claims(clients, tokens["id_token"])
    assert claims["acr"] == MFA
    access = jwt.decode(tokens["access_token"], KeySet.import_key_set(_jwks(clients)))
    assert access.claims["acr"] == MFA
    assert "otp" in access.claims["amr"]


async def test_recent_mfa_required_to_remove_a_factor(app: GatewayApp, issuer: str) -> None:
    agent, _, _ = await _enrolled(app, issuer)  # session: password only, then enrolled
    page = await agent.get("/oauth2/account")
    removed = await agent.post("/oauth2/account/totp/remove",
                               data={"csrf": hidden(page.text, "csrf")})  # fmt: skip
    assert removed.status_code == 303
    assert "/oauth2/login?tx=" in removed.headers["location"]
    step_up = await agent.get(removed.headers["location"])
    assert "Verify it\u2019s you" in step_up.text
    assert "Authenticator app" in (await agent.get("/oauth2/account")).text


async def test_forms_without_csrf_are_refused(app: GatewayApp, issuer: str) -> None:
    agent = browser(app, issuer)
    await password_login(agent)
    for path in (
        "/oauth2/account/password",
        "/oauth2/account/totp/remove",
        "/oauth2/account/sessions/end-all",
        "/oauth2/account/recovery-codes",
    ):
        response = await agent.post(path, data={"csrf": "nope"})
        assert response.status_code == 400, path
    page = await agent.get("/oauth2/account")
    cross = await agent.post("/oauth2/account/sessions/end-all",
                             data={"csrf": hidden(page.text, "csrf")},
                             headers={"origin": "https://evil.example"})  # fmt: skip
    assert cross.status_code == 400
    assert (await agent.get("/oauth2/account")).status_code == 200  # still signed in


async def test_sign_out_everywhere(app: GatewayApp, issuer: str) -> None:
    one, two = browser(app, issuer), browser(app, issuer)
    await password_login(one)
    await password_login(two)
    page = await one.get("/oauth2/account")
    assert page.text.count("Sign out</button>") == 1  # the other browser's session
    ended = await one.post("/oauth2/account/sessions/end-all",
                           data={"csrf": hidden(page.text, "csrf")})  # fmt: skip
    assert "2 session(s) ended" in ended.text
    for agent in (one, two):
        assert (await agent.get("/oauth2/account")).status_code == 303


async def test_password_change_applies_the_policy(app: GatewayApp, issuer: str) -> None:
    agent = browser(app, issuer)
    await password_login(agent)
    page = await agent.get("/oauth2/account")
    base = {"csrf": hidden(page.text, "csrf"), "current_password": "correct horse battery staple"}
    weak = await agent.post("/oauth2/account/password", data={
        **base, "new_password": "password123!", "confirm_password": "password123!"})  # fmt: skip
    assert weak.status_code == 400
    assert "too common" in weak.text
    good = "a much longer passphrase today"
    done = await agent.post("/oauth2/account/password", data={
        **base, "new_password": good, "confirm_password": good})  # fmt: skip
    assert done.status_code == 200
    assert "password is changed" in done.text
    other = browser(app, issuer)
    assert (await password_login(other, password=good)).status_code == 303


async def test_activity_lists_failures_and_successes(app: GatewayApp, issuer: str) -> None:
    agent = browser(app, issuer)
    await password_login(agent, password="not the password")
    await password_login(agent)
    page = await agent.get("/oauth2/account", headers={"user-agent": "x"})
    activity = page.text.split('id="activity"', 1)[1]
    assert activity.count("signed in</span>") == 1
    assert activity.count("failed</span>") == 1
    assert "127.0.0.1" in activity
    assert "this machine" in activity


# --- helpers ---------------------------------------------------------------------------


async def _exchange(clients: Clients, reg: object, code: str, verifier: str) -> dict[str, str]:
    async with clients.oauth_client(reg) as client:  # type: ignore[arg-type]
        token = await client.fetch_token(
            "/oauth2/token", grant_type="authorization_code", code=code,
            redirect_uri=REDIRECT, code_verifier=verifier,
        )  # fmt: skip
    return dict(token)


def _jwks(clients: Clients) -> dict[str, object]:
    return clients.server.ctx.keys.oauth_jwks()


def _id_claims(clients: Clients, token: str) -> dict[str, object]:
    return dict(jwt.decode(token, KeySet.import_key_set(_jwks(clients))).claims)


def test_totp_module_is_the_one_used() -> None:
    assert totp.DIGITS == 6
    assert totp.WINDOW == 1
