"""Authorization code + PKCE through the real login form and consent page, driven by
Authlib's own OAuth client; refresh rotation, reuse detection, the gateway."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from bastion.gateway.app import GatewayApp
from bastion.gateway.runtime import Runtime
from tests._deploy import Deployment, make_deployment
from tests.oauth._helpers import (
    REDIRECT,
    Clients,
    Registered,
    browser,
    consent,
    follow_to_client,
    hidden,
    login,
    next_location,
    pkce,
)


async def authorize(
    app: GatewayApp,
    issuer: str,
    clients: Clients,
    reg: Registered,
    *,
    scope: str,
    nonce: str | None = "n-0S6_WzA2Mj",
    user_agent: httpx.AsyncClient | None = None,
) -> tuple[dict[str, str], str, httpx.AsyncClient]:
    """Run the browser part: returns the redirect's query, the code verifier, the browser."""
    verifier, _ = pkce()
    async with clients.oauth_client(
        reg, redirect_uri=REDIRECT, scope=scope, code_challenge_method="S256"
    ) as client:
        url, state = client.create_authorization_url(
            f"{issuer}/oauth2/authorize", code_verifier=verifier, nonce=nonce
        )
    agent = user_agent or browser(app, issuer)
    first = await agent.get(url)
    if first.status_code == 303 and "/oauth2/login" in first.headers["location"]:
        first = await login(agent, first)
    query = await follow_to_client(agent, first)
    assert query.get("state") == state
    return query, verifier, agent


async def exchange(clients: Clients, reg: Registered, query: dict[str, str], verifier: str) -> dict:
    async with clients.oauth_client(reg, redirect_uri=REDIRECT) as client:
        return dict(
            await client.fetch_token(
                "/oauth2/token",
                grant_type="authorization_code",
                code=query["code"],
                code_verifier=verifier,
            )
        )


async def test_code_flow_with_pkce_login_and_consent(
    app: GatewayApp, issuer: str, clients: Clients, http: httpx.AsyncClient
) -> None:
    reg = await clients.web()
    query, verifier, agent = await authorize(
        app, issuer, clients, reg, scope="openid profile email read"
    )
    assert query["iss"] == issuer  # RFC 9207
    token = await exchange(clients, reg, query, verifier)
    assert token["token_type"] == "Bearer"
    assert token["refresh_token"]
    jwks = KeySet.import_key_set((await http.get("/.well-known/jwks.json")).json())
    id_token = jwt.decode(token["id_token"], jwks)
    assert id_token.header["alg"] == "RS256"  # OIDC's default
    claims = id_token.claims
    assert claims["iss"] == issuer
    assert claims["aud"] == [reg.client_id]
    assert claims["sub"] == "alice"
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["amr"] == ["pwd"]
    assert claims["acr"] == "urn:bastion:acr:password"
    assert isinstance(claims["auth_time"], int)
    assert claims["at_hash"]
    access = jwt.decode(token["access_token"], jwks).claims
    assert access["sub"] == "alice"
    assert access["client_id"] == reg.client_id
    assert access["roles"] == ["user"]
    api = await http.get("/api/hello", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert api.status_code == 200
    assert api.json()["headers"]["x-bastion-subject"] == "alice"
    info = await http.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert info.status_code == 200
    assert info.json()["sub"] == "alice"
    await agent.aclose()


async def test_second_authorization_skips_login_and_consent(
    app: GatewayApp, issuer: str, clients: Clients
) -> None:
    reg = await clients.web()
    _, _, agent = await authorize(app, issuer, clients, reg, scope="openid read")
    _verifier, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": reg.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid read",
        "state": "s2",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "prompt": "none",
    }
    response = await agent.get("/oauth2/authorize?" + urlencode(params))
    assert response.status_code == 302
    assert response.headers["location"].startswith(REDIRECT + "?code=")
    await agent.aclose()


async def test_consent_denied_is_access_denied(
    app: GatewayApp, issuer: str, clients: Clients
) -> None:
    reg = await clients.web()
    _verifier, challenge = pkce()
    agent = browser(app, issuer)
    params = {
        "response_type": "code",
        "client_id": reg.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "st",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    page = await login(agent, await agent.get("/oauth2/authorize?" + urlencode(params)))
    page = await agent.get(page.headers["location"])
    denied = await consent(agent, page, "deny")
    assert denied.status_code == 200  # the answer to a form post: a hand-off page
    location = next_location(denied)
    assert location.startswith(REDIRECT)
    assert "error=access_denied" in location
    assert "state=st" in location
    assert "iss=" in location
    await agent.aclose()


async def test_code_reuse_is_invalid_grant_and_revokes_the_first_tokens(
    app: GatewayApp, issuer: str, clients: Clients, http: httpx.AsyncClient
) -> None:
    reg = await clients.web()
    query, verifier, agent = await authorize(app, issuer, clients, reg, scope="openid read")
    token = await exchange(clients, reg, query, verifier)
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert (await http.get("/api/x", headers=headers)).status_code == 200
    with pytest.raises(Exception, match="invalid_grant"):
        await exchange(clients, reg, query, verifier)
    assert (await http.get("/api/x", headers=headers)).status_code == 401
    async with clients.oauth_client(reg) as client:
        with pytest.raises(Exception, match="invalid_grant"):
            await client.refresh_token("/oauth2/token", refresh_token=token["refresh_token"])
    await agent.aclose()


async def test_refresh_rotates_and_reuse_revokes_the_family(
    app: GatewayApp,
    issuer: str,
    clients: Clients,
    http: httpx.AsyncClient,
    deployment: Deployment,
    runtime: Runtime,
) -> None:
    reg = await clients.web()
    query, verifier, agent = await authorize(
        app, issuer, clients, reg, scope="openid offline_access read"
    )
    first = await exchange(clients, reg, query, verifier)
    async with clients.oauth_client(reg) as client:
        second = dict(
            await client.refresh_token("/oauth2/token", refresh_token=first["refresh_token"])
        )
        assert second["refresh_token"] != first["refresh_token"]
        assert second["access_token"] != first["access_token"]
        headers = {"Authorization": f"Bearer {second['access_token']}"}
        assert (await http.get("/api/x", headers=headers)).status_code == 200
        # Past the grace period the old refresh token is a replay: the family dies.
        ctx = clients.server.ctx
        ctx.config = ctx.config.model_copy(
            update={"oauth": ctx.config.oauth.model_copy(update={"refresh_reuse_grace_seconds": 0})}
        )
        with pytest.raises(Exception, match="invalid_grant"):
            await client.refresh_token("/oauth2/token", refresh_token=first["refresh_token"])
        with pytest.raises(Exception, match="invalid_grant"):
            await client.refresh_token("/oauth2/token", refresh_token=second["refresh_token"])
    assert (await http.get("/api/x", headers=headers)).status_code == 401
    runtime.audit.flush()
    events = [json.loads(line) for line in deployment.audit_log.read_text().splitlines()]
    [alert] = [e for e in events if e.get("event") == "security_event"]
    assert alert["kind"] == "refresh_token_reuse"
    assert alert["client_id"] == reg.client_id
    log_text = deployment.audit_log.read_text()
    for secret in (first["refresh_token"], second["refresh_token"], first["access_token"]):
        assert secret not in log_text
    await agent.aclose()


async def test_refresh_within_the_grace_period_is_not_reuse(
    app: GatewayApp, issuer: str, clients: Clients
) -> None:
    reg = await clients.web()
    query, verifier, agent = await authorize(app, issuer, clients, reg, scope="openid read")
    first = await exchange(clients, reg, query, verifier)
    async with clients.oauth_client(reg) as client:
        a = await client.refresh_token("/oauth2/token", refresh_token=first["refresh_token"])
        b = await client.refresh_token("/oauth2/token", refresh_token=first["refresh_token"])
        assert a["refresh_token"] != b["refresh_token"]
        await client.refresh_token("/oauth2/token", refresh_token=a["refresh_token"])
    await agent.aclose()


async def test_login_page_headers_cookie_and_303(
    app: GatewayApp, issuer: str, clients: Clients
) -> None:
    reg = await clients.web()
    _, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": reg.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "login_hint": '"><script>alert(1)</script>',
    }
    agent = browser(app, issuer)
    start = await agent.get("/oauth2/authorize?" + urlencode(params))
    assert start.status_code == 303
    page = await agent.get(start.headers["location"])
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp  # RFC 9700 §4.16 clickjacking
    assert "script-src" not in csp
    assert "default-src 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "same-origin"  # no Referer to other sites
    assert "<script>alert(1)</script>" not in page.text  # autoescaped
    assert "&lt;script&gt;" in page.text
    cookie = start.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
    # http loopback issuer: no __Host- prefix and no Secure (browsers would drop them)
    assert cookie.startswith("bastion-session=")
    no_csrf = await agent.post("/oauth2/login", data={"tx": "x", "username": "alice",
                                                      "password": "x"})  # fmt: skip
    assert no_csrf.status_code == 400
    posted = await login(agent, start)
    assert posted.status_code == 303  # RFC 9700 §4.12: never 307 after a credential post
    assert posted.headers["set-cookie"] != cookie  # a new session id after login
    wrong = await login(agent, await agent.get("/oauth2/login"), password="wrong")
    assert wrong.status_code == 401
    assert "Wrong username or password." in wrong.text
    await agent.aclose()


async def test_secure_cookie_on_https_issuer(tmp_path: Path, upstream: str) -> None:
    deployment = await make_deployment(tmp_path / "h", upstream, public_url="https://id.example")
    rt = await Runtime.start(deployment.config)
    try:
        transport = httpx.ASGITransport(app=GatewayApp(deployment.config, rt))
        async with httpx.AsyncClient(transport=transport, base_url="https://id.example") as agent:
            page = await agent.get("/oauth2/login")
            cookie = page.headers["set-cookie"]
            assert cookie.startswith("__Host-bastion-session=")
            assert "Secure" in cookie
            assert "Path=/" in cookie
            assert "Domain" not in cookie
    finally:
        await rt.aclose()


async def test_sign_out_everywhere_revokes_refresh_and_access_tokens(
    app: GatewayApp, issuer: str, clients: Clients, http: httpx.AsyncClient
) -> None:
    reg = await clients.web()
    query, verifier, agent = await authorize(
        app, issuer, clients, reg, scope="openid offline_access read"
    )
    tokens = await exchange(clients, reg, query, verifier)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await http.get("/api/x", headers=headers)).status_code == 200
    account = await agent.get(f"{issuer}/oauth2/account")
    assert account.status_code == 200
    ended = await agent.post(
        f"{issuer}/oauth2/account/sessions/end-all",
        data={"csrf": hidden(account.text, "csrf")},
        headers={"Origin": issuer},
    )
    assert ended.status_code == 200
    assert "Signed out everywhere" in ended.text
    assert (await http.get("/api/x", headers=headers)).status_code == 401
    async with clients.oauth_client(reg) as client:
        with pytest.raises(Exception, match="invalid_grant"):
            await client.refresh_token("/oauth2/token", refresh_token=tokens["refresh_token"])
    assert (await agent.get(f"{issuer}/oauth2/account")).status_code in (302, 303)
    await agent.aclose()
