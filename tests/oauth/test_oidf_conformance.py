"""One test per OpenID Foundation conformance module that applies (tests/vectors/oidf/),
named after the module. The browser is httpx over the real gateway app; the login form and
consent page are submitted over HTTP."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import text

from bastion.gateway.app import GatewayApp
from bastion.gateway.runtime import Runtime
from bastion.oauth.clients import InvalidClientMetadata
from tests.oauth._helpers import (
    REDIRECT,
    Clients,
    Registered,
    browser,
    consent,
    login,
    next_location,
    pkce,
)

PLANS = Path(__file__).parents[1] / "vectors" / "oidf"
NOT_APPLICABLE = {
    "oidcc-scope-address": "bastion's users have no address claim",
    "oidcc-scope-phone": "bastion's users have no phone claims",
    "oidcc-scope-all": "needs address and phone claims",
    "oidcc-ensure-request-object-with-redirect-uri": "request objects are not supported "
    "(answered request_not_supported, see test_oidcc_unsigned_request_object_...)",
}


class Flow:
    """A browser and a client against one deployment."""

    def __init__(self, app: GatewayApp, issuer: str, clients: Clients, reg: Registered) -> None:
        self.app = app
        self.issuer = issuer
        self.clients = clients
        self.reg = reg
        self.agent = browser(app, issuer)
        self.verifier = ""

    def params(self, **extra: str) -> dict[str, str]:
        self.verifier, challenge = pkce()
        params = {
            "response_type": "code", "client_id": self.reg.client_id, "redirect_uri": REDIRECT,
            "scope": "openid", "state": "st", "nonce": "nn", "code_challenge": challenge,
            "code_challenge_method": "S256",
        }  # fmt: skip
        params.update(extra)
        return {k: v for k, v in params.items() if v != ""}

    async def run(self, method: str = "GET", **extra: str) -> dict[str, str]:
        """Authorize (logging in and consenting when asked); the client's redirect query."""
        params = self.params(**extra)
        if method == "POST":
            response = await self.agent.post("/oauth2/authorize", data=params)
        else:
            response = await self.agent.get("/oauth2/authorize?" + urlencode(params))
        for _ in range(6):
            if response.status_code == 200 and 'name="decision"' in response.text:
                response = await consent(self.agent, response)
                continue
            location = next_location(response)
            if location.startswith(REDIRECT):
                return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
            if "/oauth2/login" in location:
                response = await login(self.agent, response)
            else:
                response = await self.agent.get(location)
        raise AssertionError("no redirect to the client")

    async def tokens(self, query: dict[str, str], *, auth: str = "basic") -> dict[str, Any]:
        data = {"grant_type": "authorization_code", "code": query["code"],
                "redirect_uri": REDIRECT, "code_verifier": self.verifier}  # fmt: skip
        if auth == "post":
            data.update(client_id=self.reg.client_id, client_secret=self.reg.secret or "")
            response = await self.agent.post("/oauth2/token", data=data)
        else:
            basic = httpx.BasicAuth(self.reg.client_id, self.reg.secret or "")
            response = await self.agent.post("/oauth2/token", data=data, auth=basic)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def id_claims(self, token: dict[str, Any]) -> dict[str, Any]:
        jwks = KeySet.import_key_set((await self.agent.get("/.well-known/jwks.json")).json())
        decoded = jwt.decode(token["id_token"], jwks)
        claims = dict(decoded.claims)
        claims["_alg"] = decoded.header["alg"]
        return claims

    async def full(self, **extra: str) -> dict[str, Any]:
        return await self.id_claims(await self.tokens(await self.run(**extra)))


@pytest.fixture
async def flow(app: GatewayApp, issuer: str, clients: Clients, runtime: Runtime) -> Any:
    async with runtime.engine.begin() as conn:
        await conn.execute(text(
            "UPDATE users SET email='alice@example.com', email_verified=:t, name='Alice Liddell' "
            "WHERE username='alice'"), {"t": True})  # fmt: skip
    reg = await clients.web()
    f = Flow(app, issuer, clients, reg)
    yield f
    await f.agent.aclose()


def test_every_plan_module_is_tested_or_not_applicable() -> None:
    names = {m["testName"] for plan in PLANS.glob("*.json") for m in json.loads(plan.read_text())}
    assert len(names) == 39
    tested = {
        n.removeprefix("test_").replace("_", "-") for n in globals() if n.startswith("test_oidcc")
    }
    assert names == tested | set(NOT_APPLICABLE), sorted(names ^ (tested | set(NOT_APPLICABLE)))


async def test_oidcc_server(flow: Flow) -> None:
    claims = await flow.full()
    assert claims["sub"] == "alice"
    assert claims["aud"] == [flow.reg.client_id]
    assert claims["nonce"] == "nn"
    assert claims["iss"] == flow.issuer


async def test_oidcc_response_type_missing(flow: Flow) -> None:
    params = flow.params(response_type="")
    response = await flow.agent.get("/oauth2/authorize?" + urlencode(params))
    assert response.status_code == 302
    assert "error=unsupported_response_type" in response.headers["location"]


async def test_oidcc_idtoken_signature(flow: Flow) -> None:
    assert (await flow.full())["_alg"] == "RS256"


async def test_oidcc_idtoken_unsigned(flow: Flow) -> None:
    doc = (await flow.agent.get("/.well-known/openid-configuration")).json()
    assert "none" not in doc["id_token_signing_alg_values_supported"]
    with pytest.raises(InvalidClientMetadata):
        await flow.clients.web(id_token_signed_response_alg="none")


async def _userinfo(flow: Flow, method: str, where: str) -> httpx.Response:
    token = await flow.tokens(await flow.run(scope="openid profile email"))
    access = token["access_token"]
    if where == "header":
        headers = {"Authorization": f"Bearer {access}"}
        return await flow.agent.request(method, "/oauth2/userinfo", headers=headers)
    return await flow.agent.post("/oauth2/userinfo", data={"access_token": access})


async def test_oidcc_userinfo_get(flow: Flow) -> None:
    response = await _userinfo(flow, "GET", "header")
    assert response.json() == {
        "sub": "alice", "preferred_username": "alice", "name": "Alice Liddell",
        "email": "alice@example.com", "email_verified": True,
    }  # fmt: skip


async def test_oidcc_userinfo_post_header(flow: Flow) -> None:
    response = await _userinfo(flow, "POST", "header")
    assert response.status_code == 200
    assert response.json()["sub"] == "alice"


async def test_oidcc_userinfo_post_body(flow: Flow) -> None:
    # Optional in the standards; bastion takes bearer tokens from the header only.
    response = await _userinfo(flow, "POST", "body")
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers


async def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(flow: Flow) -> None:
    claims = await flow.full(nonce="")
    assert "nonce" not in claims


async def test_oidcc_scope_profile(flow: Flow) -> None:
    claims = await flow.full(scope="openid profile")
    assert claims["name"] == "Alice Liddell"
    assert "email" not in claims


async def test_oidcc_scope_email(flow: Flow) -> None:
    response = await _userinfo(flow, "GET", "header")
    assert response.json()["email"] == "alice@example.com"


async def test_oidcc_alternate_happy_flow(flow: Flow) -> None:
    params = flow.params(scope="email profile openid")
    reordered = dict(reversed(list(params.items())))
    response = await flow.agent.get("/oauth2/authorize?" + urlencode(reordered))
    response = await login(flow.agent, response)
    response = await consent(flow.agent, await flow.agent.get(response.headers["location"]))
    query = parse_qs(urlsplit(next_location(response)).query)
    claims = await flow.id_claims(await flow.tokens({"code": query["code"][0]}))
    assert claims["email"] == "alice@example.com"


async def test_oidcc_display_page(flow: Flow) -> None:
    assert (await flow.full(display="page"))["sub"] == "alice"


async def test_oidcc_display_popup(flow: Flow) -> None:
    assert (await flow.full(display="popup"))["sub"] == "alice"


async def test_oidcc_prompt_login(flow: Flow) -> None:
    first = await flow.full()
    await asyncio.sleep(1.05)
    params = flow.params(prompt="login")
    response = await flow.agent.get("/oauth2/authorize?" + urlencode(params))
    assert "/oauth2/login" in response.headers["location"]  # asked to log in again
    second = await flow.full(prompt="login")
    assert second["auth_time"] > first["auth_time"]


async def test_oidcc_prompt_none_not_logged_in(flow: Flow) -> None:
    params = flow.params(prompt="none")
    response = await flow.agent.get("/oauth2/authorize?" + urlencode(params))
    assert "error=login_required" in response.headers["location"]


async def test_oidcc_prompt_none_logged_in(flow: Flow) -> None:
    first = await flow.full()
    second = await flow.full(prompt="none")
    assert (second["sub"], second["auth_time"]) == (first["sub"], first["auth_time"])


async def test_oidcc_max_age_1(flow: Flow) -> None:
    first = await flow.full()
    await asyncio.sleep(2.05)
    params = flow.params(max_age="1")
    response = await flow.agent.get("/oauth2/authorize?" + urlencode(params))
    assert "/oauth2/login" in response.headers["location"]
    second = await flow.full(max_age="1")
    assert second["auth_time"] > first["auth_time"]


async def test_oidcc_max_age_10000(flow: Flow) -> None:
    first = await flow.full(max_age="15000")
    second = await flow.full(max_age="10000", prompt="none")
    assert second["auth_time"] == first["auth_time"]
    assert second["sub"] == first["sub"]


async def test_oidcc_ensure_request_with_unknown_parameter_succeeds(flow: Flow) -> None:
    assert (await flow.full(extra="foobar"))["sub"] == "alice"


async def test_oidcc_id_token_hint(flow: Flow) -> None:
    first = await flow.tokens(await flow.run())
    claims = await flow.id_claims(first)
    second = await flow.full(prompt="none", id_token_hint=first["id_token"])
    assert (second["sub"], second["auth_time"]) == (claims["sub"], claims["auth_time"])


async def test_oidcc_login_hint(flow: Flow) -> None:
    params = flow.params(login_hint="alice")
    response = await flow.agent.get("/oauth2/authorize?" + urlencode(params))
    page = await flow.agent.get(response.headers["location"])
    assert 'value="alice"' in page.text


async def test_oidcc_ui_locales(flow: Flow) -> None:
    assert (await flow.full(ui_locales="se"))["sub"] == "alice"


async def test_oidcc_claims_locales(flow: Flow) -> None:
    assert (await flow.full(claims_locales="se"))["sub"] == "alice"


async def test_oidcc_ensure_request_with_acr_values_succeeds(flow: Flow) -> None:
    doc = (await flow.agent.get("/.well-known/openid-configuration")).json()
    claims = await flow.full(acr_values=" ".join(doc["acr_values_supported"]))
    assert claims["acr"] in doc["acr_values_supported"]


async def _code_reuse(flow: Flow) -> None:
    query = await flow.run()
    token = await flow.tokens(query)
    basic = httpx.BasicAuth(flow.reg.client_id, flow.reg.secret or "")
    again = await flow.agent.post("/oauth2/token", auth=basic, data={
        "grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT,
        "code_verifier": flow.verifier})  # fmt: skip
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert (await flow.agent.get("/oauth2/userinfo", headers=headers)).status_code == 401


async def test_oidcc_codereuse(flow: Flow) -> None:
    await _code_reuse(flow)


async def test_oidcc_codereuse_30seconds(flow: Flow) -> None:
    # The wait does not change bastion's answer: a used code stays used, and the first
    # access token is revoked (RFC 6749 §4.1.2). The 30 s are not waited here.
    await _code_reuse(flow)


async def test_oidcc_ensure_registered_redirect_uri(flow: Flow) -> None:
    params = flow.params(redirect_uri="https://app.example/unregistered")
    response = await flow.agent.get("/oauth2/authorize?" + urlencode(params))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "redirect_uri" in response.text


async def test_oidcc_ensure_post_request_succeeds(flow: Flow) -> None:
    query = await flow.run(method="POST")
    assert (await flow.id_claims(await flow.tokens(query)))["sub"] == "alice"


async def test_oidcc_server_client_secret_post(flow: Flow) -> None:
    flow.reg = await flow.clients.web(token_endpoint_auth_method="client_secret_post")
    query = await flow.run()
    assert (await flow.id_claims(await flow.tokens(query, auth="post")))["sub"] == "alice"


async def test_oidcc_request_uri_unsigned_supported_correctly_or_rejected_as_unsupported(
    flow: Flow,
) -> None:
    params = flow.params(request_uri="https://rp.example/request.jwt")
    response = await flow.agent.get("/oauth2/authorize?" + urlencode(params))
    assert "error=request_uri_not_supported" in response.headers["location"]


async def test_oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported(
    flow: Flow,
) -> None:
    request_object = "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9."
    params = flow.params(request=request_object)
    response = await flow.agent.get("/oauth2/authorize?" + urlencode(params))
    assert "error=request_not_supported" in response.headers["location"]


async def test_oidcc_claims_essential(flow: Flow) -> None:
    claims = json.dumps({"userinfo": {"name": {"essential": True}}})
    token = await flow.tokens(await flow.run(scope="openid profile", claims=claims))
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    info = (await flow.agent.get("/oauth2/userinfo", headers=headers)).json()
    assert info["name"] == "Alice Liddell"


async def test_oidcc_refresh_token(flow: Flow) -> None:
    token = await flow.tokens(await flow.run(scope="openid offline_access"))
    basic = httpx.BasicAuth(flow.reg.client_id, flow.reg.secret or "")
    refreshed = await flow.agent.post("/oauth2/token", auth=basic, data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"]})  # fmt: skip
    assert refreshed.status_code == 200
    body = refreshed.json()
    assert (await flow.id_claims(body))["sub"] == "alice"  # OIDC Core §12.2
    other = await flow.clients.web()
    stolen = await flow.agent.post("/oauth2/token",
                                   auth=httpx.BasicAuth(other.client_id, other.secret or ""),
                                   data={"grant_type": "refresh_token",
                                         "refresh_token": body["refresh_token"]})  # fmt: skip
    assert stolen.json()["error"] == "invalid_grant"  # bound to the client


async def test_oidcc_ensure_request_with_valid_pkce_succeeds(flow: Flow) -> None:
    assert (await flow.full())["sub"] == "alice"


async def test_oidcc_discovery_endpoint_verification(flow: Flow) -> None:
    doc = (await flow.agent.get("/.well-known/openid-configuration")).json()
    OpenIDProviderMetadata(doc).validate()
    assert "code" in doc["response_types_supported"]
    assert "public" in doc["subject_types_supported"]
    assert "RS256" in doc["id_token_signing_alg_values_supported"]
    assert "openid" in doc["scopes_supported"]
    assert doc["jwks_uri"] == f"{flow.issuer}/.well-known/jwks.json"
