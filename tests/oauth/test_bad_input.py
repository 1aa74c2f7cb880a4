"""Every endpoint answers malformed and hostile requests with the RFC's error code: never
a 500, never a redirect to an unregistered URI."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError

from bastion.config import parse_config
from bastion.errors import ConfigError
from bastion.gateway.app import GatewayApp
from tests.oauth._helpers import REDIRECT, Clients, Registered, pkce
from tests.oauth.test_authorization_code import authorize, exchange

HOSTILE = ["", " ", "\x00", "%00", "a" * 5000, '"><script>', "\\", "é", "{}", "../../etc",
           "https://evil.example/cb", "javascript:alert(1)", "\u202e"]  # fmt: skip


def authz(reg: Registered, **over: str | None) -> str:
    _, challenge = pkce()
    params: dict[str, str | None] = {
        "response_type": "code", "client_id": reg.client_id, "redirect_uri": REDIRECT,
        "scope": "openid", "state": "xyz", "code_challenge": challenge,
        "code_challenge_method": "S256",
    }  # fmt: skip
    params.update(over)
    return "/oauth2/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


def redirected_error(response: httpx.Response) -> str:
    assert response.status_code == 302, (response.status_code, response.text[:300])
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["xyz"]
    assert query["iss"] == ["http://127.0.0.1:8080"]
    return query["error"][0]


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"response_type": None}, "unsupported_response_type"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"prompt": "none"}, "login_required"),
        ({"prompt": "none login"}, "invalid_request"),
    ],
)
async def test_authorization_errors_redirect_with_state_and_iss(
    clients: Clients, http: httpx.AsyncClient, override: dict[str, str | None], error: str
) -> None:
    reg = await clients.web()
    assert redirected_error(await http.get(authz(reg, **override))) == error


@pytest.mark.parametrize(
    "override",
    [
        {"client_id": None},
        {"client_id": "nobody"},
        {"redirect_uri": None},
        {"redirect_uri": "https://evil.example/cb"},
        {"redirect_uri": REDIRECT + "/extra"},
        {"redirect_uri": REDIRECT + "?x=1"},
        {"redirect_uri": 'https://app.example/cb"'},
        {"redirect_uri": "HTTPS://APP.EXAMPLE/cb"},
    ],
)
async def test_never_redirects_to_an_unverified_uri(
    clients: Clients, http: httpx.AsyncClient, override: dict[str, str | None]
) -> None:
    reg = await clients.web()
    response = await http.get(authz(reg, **override))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "text/html" in response.headers["content-type"]
    assert "<script>" not in response.text


async def test_repeated_and_hostile_authorization_parameters(
    clients: Clients, http: httpx.AsyncClient
) -> None:
    reg = await clients.web()
    repeated = await http.get(authz(reg) + "&scope=openid")
    assert repeated.status_code == 400
    assert "repeated" in repeated.text
    for name in (
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "prompt",
        "max_age",
        "code_challenge",
        "response_type",
        "request_uri",
        "request",
        "login_hint",
    ):
        for value in HOSTILE:
            response = await http.get(authz(reg, **{name: value}))
            assert response.status_code in (200, 302, 303, 400), (name, value, response.text[:200])
            location = response.headers.get("location", "")
            assert not location or location.startswith((REDIRECT, "http://127.0.0.1:8080/"))


async def test_token_endpoint_errors(clients: Clients, http: httpx.AsyncClient) -> None:
    reg = await clients.web()
    auth = httpx.BasicAuth(reg.client_id, reg.secret or "")

    async def post(data: dict[str, str], **kw: object) -> httpx.Response:
        return await http.post("/oauth2/token", data=data, auth=auth, **kw)  # type: ignore[arg-type]

    assert (await post({})).json()["error"] == "invalid_request"  # no form at all
    assert (await post({"grant_type": "password"})).json()["error"] == "unsupported_grant_type"
    assert (await post({"grant_type": "implicit"})).json()["error"] == "unsupported_grant_type"
    missing = await post({"grant_type": "authorization_code", "redirect_uri": REDIRECT})
    assert missing.json()["error"] == "invalid_request"
    wrong = await post({"grant_type": "authorization_code", "code": "nope",
                        "redirect_uri": REDIRECT, "code_verifier": "x" * 43})  # fmt: skip
    assert wrong.json()["error"] == "invalid_grant"
    refresh = await post({"grant_type": "refresh_token", "refresh_token": "garbage"})
    assert refresh.json()["error"] == "invalid_grant"
    cc = await post({"grant_type": "client_credentials"})
    assert cc.json()["error"] == "unauthorized_client"  # not one of this client's grants
    repeated = await http.post(
        "/oauth2/token", content="grant_type=client_credentials&grant_type=client_credentials",
        headers={"content-type": "application/x-www-form-urlencoded"}, auth=auth)  # fmt: skip
    assert repeated.json()["error"] == "invalid_request"
    as_json = await http.post("/oauth2/token", json={"grant_type": "client_credentials"}, auth=auth)
    assert as_json.status_code == 400
    assert as_json.json()["error"] == "invalid_request"
    huge = await http.post("/oauth2/token", data={"grant_type": "x" * 100_000}, auth=auth)
    assert huge.status_code == 400
    binary = await http.post(
        "/oauth2/token",
        content=b"grant_type=%ff%fe",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert binary.json()["error"] == "invalid_request"
    assert (await http.get("/oauth2/token")).status_code == 405
    for value in HOSTILE:
        for name in ("grant_type", "code", "redirect_uri", "code_verifier", "refresh_token",
                     "scope", "client_id", "client_secret", "device_code"):  # fmt: skip
            response = await http.post("/oauth2/token", data={"grant_type": "authorization_code",
                                                              name: value})  # fmt: skip
            assert 400 <= response.status_code < 500, (name, value, response.text)
            assert "error" in response.json()


async def test_pkce_verifier_must_match(app: GatewayApp, issuer: str, clients: Clients) -> None:
    # The full flow lives in test_authorization_code; here only the verifier is wrong.
    reg = await clients.web()
    query, _, agent = await authorize(app, issuer, clients, reg, scope="openid")
    with pytest.raises(OAuthError, match="invalid_grant"):
        await exchange(clients, reg, query, "A" * 43)
    await agent.aclose()


async def test_revocation_introspection_userinfo_errors(
    clients: Clients, http: httpx.AsyncClient
) -> None:
    reg = await clients.machine()
    auth = httpx.BasicAuth(reg.client_id, reg.secret or "")
    no_token = await http.post("/oauth2/revoke", data={}, auth=auth)
    assert no_token.json()["error"] == "invalid_request"
    unknown = await http.post("/oauth2/revoke", data={"token": "unknown"}, auth=auth)
    assert unknown.status_code == 200  # RFC 7009 §2.2
    hint = await http.post("/oauth2/revoke", data={"token": "t", "token_type_hint": "x"}, auth=auth)
    assert hint.json()["error"] == "unsupported_token_type"
    anonymous = await http.post("/oauth2/revoke", data={"token": "t"})
    assert anonymous.json()["error"] == "invalid_client"
    introspect = await http.post("/oauth2/introspect", data={"token": "t"})
    assert introspect.json()["error"] == "invalid_client"
    assert (await http.get("/oauth2/userinfo")).status_code == 401
    bad = await http.get("/oauth2/userinfo", headers={"Authorization": "Bearer x.y.z"})
    assert bad.status_code == 401
    assert 'error="invalid_token"' in bad.headers["www-authenticate"]
    query = await http.get("/oauth2/userinfo?access_token=abc")
    assert query.status_code == 400
    par = await http.post("/oauth2/par", data={"response_type": "code"})
    assert par.json()["error"] == "invalid_client"
    device = await http.post("/oauth2/device_authorization", data={"client_id": reg.client_id})
    assert device.status_code in (400, 401)
    assert device.json()["error"] in ("invalid_client", "unauthorized_client")


def test_code_lifetime_cannot_exceed_60_seconds() -> None:
    with pytest.raises(ConfigError, match="code_ttl_seconds"):
        parse_config({"oauth": {"code_ttl_seconds": 600}})
