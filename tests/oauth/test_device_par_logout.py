"""Device authorization (RFC 8628), pushed authorization requests (RFC 9126),
private_key_jwt (RFC 7523) and RP-initiated logout."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

from bastion.gateway.app import GatewayApp
from tests.oauth._helpers import REDIRECT, Clients, browser, follow_to_client, hidden, login, pkce

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


async def test_device_flow_end_to_end(
    app: GatewayApp, issuer: str, clients: Clients, http: httpx.AsyncClient
) -> None:
    reg = await clients.add(
        grant_types=[DEVICE, "refresh_token"], scope="read", token_endpoint_auth_method="none"
    )
    start = await http.post(
        "/oauth2/device_authorization", data={"client_id": reg.client_id, "scope": "read"}
    )
    assert start.status_code == 200, start.text
    grant = start.json()
    assert grant["verification_uri"] == f"{issuer}/oauth2/device"
    poll = {"grant_type": DEVICE, "device_code": grant["device_code"], "client_id": reg.client_id}
    pending = await http.post("/oauth2/token", data=poll)
    assert pending.status_code == 400
    assert pending.json()["error"] == "authorization_pending"
    fast = await http.post("/oauth2/token", data=poll)
    assert fast.json()["error"] == "slow_down"  # polled again inside the interval
    agent = browser(app, issuer)
    page = await login(agent, await agent.get(grant["verification_uri_complete"]))
    page = await agent.get(page.headers["location"])
    assert grant["user_code"] in page.text
    approved = await agent.post("/oauth2/device", data={
        "csrf": hidden(page.text, "csrf"), "user_code": grant["user_code"].lower(),
        "decision": "allow"})  # fmt: skip
    assert approved.status_code == 200, approved.text
    token = await http.post("/oauth2/token", data=poll)
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["refresh_token"]
    api = await http.get("/api/x", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert api.json()["headers"]["x-bastion-subject"] == "alice"
    again = await http.post("/oauth2/token", data=poll)
    assert again.json()["error"] == "invalid_grant"  # single use
    await agent.aclose()


async def test_device_wrong_user_code_is_refused(app: GatewayApp, issuer: str) -> None:
    agent = browser(app, issuer)
    page = await login(agent, await agent.get("/oauth2/device"))
    page = await agent.get(page.headers["location"])
    wrong = await agent.post(
        "/oauth2/device",
        data={"csrf": hidden(page.text, "csrf"), "user_code": "BCDF-GHJK", "decision": "allow"},
    )
    assert wrong.status_code == 400
    assert "not valid" in wrong.text
    await agent.aclose()


async def test_pushed_authorization_request_required_per_client(
    app: GatewayApp, issuer: str, clients: Clients, http: httpx.AsyncClient
) -> None:
    reg = await clients.web(require_pushed_authorization_requests=True)
    _verifier, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": reg.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "par",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    agent = browser(app, issuer)
    direct = await agent.get("/oauth2/authorize?" + urlencode(params))
    assert direct.status_code == 302
    assert "error=invalid_request" in direct.headers["location"]
    auth = httpx.BasicAuth(reg.client_id, reg.secret or "")
    pushed = await http.post("/oauth2/par", data=params, auth=auth)
    assert pushed.status_code == 201, pushed.text
    uri = pushed.json()["request_uri"]
    assert uri.startswith("urn:ietf:params:oauth:request_uri:")
    assert pushed.json()["expires_in"] == 60
    url = "/oauth2/authorize?" + urlencode({"client_id": reg.client_id, "request_uri": uri})
    first = await login(agent, await agent.get(url))
    query = await follow_to_client(agent, first)
    assert query["state"] == "par"
    assert query["code"]
    replay = await agent.get(url)
    assert replay.status_code == 400  # a request_uri is single use
    bad = await http.post("/oauth2/par", data={**params, "redirect_uri": "https://evil/cb"},
                          auth=auth)  # fmt: skip
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_request"
    await agent.aclose()


async def test_private_key_jwt_with_jti_replay_protection(
    clients: Clients, http: httpx.AsyncClient, issuer: str
) -> None:
    key = ECKey.generate_key("P-256", private=True, auto_kid=True)
    reg = await clients.machine(
        token_endpoint_auth_method="private_key_jwt", jwks={"keys": [key.as_dict(private=False)]}
    )
    now = int(time.time())
    assertion = jwt.encode(
        {"alg": "ES256", "kid": key.kid},
        {
            "iss": reg.client_id,
            "sub": reg.client_id,
            "aud": f"{issuer}/oauth2/token",
            "jti": "unique-1",
            "iat": now,
            "exp": now + 60,
        },
        key,
    )
    data = {
        "grant_type": "client_credentials",
        "scope": "read",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    ok = await http.post("/oauth2/token", data=data)
    assert ok.status_code == 200, ok.text
    replay = await http.post("/oauth2/token", data=data)
    assert replay.status_code in (400, 401)
    assert replay.json()["error"] == "invalid_client"
    other = ECKey.generate_key("P-256", private=True)
    forged = jwt.encode(
        {"alg": "ES256"},
        {
            "iss": reg.client_id,
            "sub": reg.client_id,
            "aud": issuer,
            "jti": "unique-2",
            "exp": now + 60,
        },
        other,
    )
    refused = await http.post("/oauth2/token", data={**data, "client_assertion": forged})
    assert refused.json()["error"] == "invalid_client"


async def test_rp_initiated_logout_with_id_token_hint(
    app: GatewayApp, issuer: str, clients: Clients
) -> None:
    reg = await clients.web()
    verifier, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": reg.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "nonce": "n",
    }
    agent = browser(app, issuer)
    query = await follow_to_client(
        agent, await login(agent, await agent.get("/oauth2/authorize?" + urlencode(params)))
    )
    async with clients.oauth_client(reg, redirect_uri=REDIRECT) as client:
        token = await client.fetch_token(
            "/oauth2/token",
            grant_type="authorization_code",
            code=query["code"],
            code_verifier=verifier,
        )
    bye = "https://app.example/bye"
    evil = await agent.get(
        "/oauth2/logout?"
        + urlencode(
            {
                "id_token_hint": token["id_token"],
                "post_logout_redirect_uri": "https://evil.example/",
            }
        )
    )
    assert evil.status_code == 200  # logged out, but never sent to an unregistered URI
    logout = await agent.get(
        "/oauth2/logout?"
        + urlencode(
            {"id_token_hint": token["id_token"], "post_logout_redirect_uri": bye, "state": "x"}
        )
    )
    assert logout.status_code == 302
    assert logout.headers["location"] == bye + "?state=x"
    # The session is gone: prompt=none now fails with login_required.
    silent = await agent.get("/oauth2/authorize?" + urlencode({**params, "prompt": "none"}))
    location = silent.headers["location"]
    assert parse_qs(urlsplit(location).query)["error"] == ["login_required"]
    no_hint = await agent.get("/oauth2/logout")
    assert no_hint.status_code == 200
    assert 'name="confirm"' in no_hint.text  # no id_token_hint: ask the user first
    await agent.aclose()
