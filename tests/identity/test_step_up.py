"""RFC 9470 step-up end to end (in-process): a route requiring acr=mfa and max_age answers
a password-only token with the insufficient_user_authentication challenge; the client
sends the user back with acr_values/max_age; the authorization server asks for the
second factor; the new token passes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from bastion.gateway.app import GatewayApp
from tests._deploy import Deployment, base_config, make_deployment
from tests.identity._flows import enrol_totp, next_code, password_login, second_factor
from tests.oauth._helpers import REDIRECT, Clients, browser, follow_to_client, pkce

MFA = "urn:bastion:acr:mfa"


@pytest.fixture
async def deployment(tmp_path: Path, upstream: str) -> Deployment:
    routes = base_config(upstream)["routes"]
    sensitive = {"name": "sensitive", "path_prefix": "/api/payouts", "upstream": upstream,
                 "auth": ["jwt"], "acr": MFA, "max_age": 600}  # fmt: skip
    return await make_deployment(tmp_path / "d", upstream, routes=[sensitive, *routes])


async def _token(
    clients: Clients, agent: httpx.AsyncClient, extra: dict[str, str], code: str | None = None
) -> str:
    reg = await clients.web(skip_consent=True)
    verifier, challenge = pkce()
    params = {"response_type": "code", "client_id": reg.client_id, "redirect_uri": REDIRECT,
              "scope": "openid read", "state": "s", "code_challenge": challenge,
              "code_challenge_method": "S256", **extra}  # fmt: skip
    start = await agent.get("/oauth2/authorize?" + urlencode(params))
    if code is not None:
        assert "/oauth2/login?tx=" in start.headers["location"]
        start = await second_factor(agent, start.headers["location"], code)
    query = await follow_to_client(agent, start)
    async with clients.oauth_client(reg) as client:
        token = await client.fetch_token("/oauth2/token", grant_type="authorization_code",
                                         code=query["code"], redirect_uri=REDIRECT,
                                         code_verifier=verifier)  # fmt: skip
    return str(token["access_token"])


def _challenge(response: httpx.Response) -> dict[str, str]:
    header = response.headers["www-authenticate"]
    assert header.startswith("Bearer ")
    out: dict[str, str] = {}
    for part in header[len("Bearer ") :].split(", "):
        name, _, value = part.partition("=")
        out[name] = value.strip('"')
    return out


async def test_step_up_round_trip(app: GatewayApp, issuer: str, clients: Clients) -> None:
    agent = browser(app, issuer)
    await password_login(agent)
    secret, _ = await enrol_totp(agent)  # the session stays password-only
    weak = await _token(clients, agent, {})
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=issuer)
    assert (await http.get("/api/orders", headers={"authorization": f"Bearer {weak}"})
            ).status_code == 200  # fmt: skip
    refused = await http.get("/api/payouts/1", headers={"authorization": f"Bearer {weak}"})
    assert refused.status_code == 401
    challenge = _challenge(refused)
    assert challenge["error"] == "insufficient_user_authentication"
    assert challenge["acr_values"] == MFA
    assert challenge["max_age"] == "600"
    # The client sends the user back with what the challenge asked for (RFC 9470 §4).
    strong = await _token(clients, agent, {"acr_values": challenge["acr_values"],
                                           "max_age": challenge["max_age"]},
                          code=next_code(secret))  # fmt: skip
    claims = jwt.decode(strong, KeySet.import_key_set(clients.server.ctx.keys.oauth_jwks()))
    assert claims.claims["acr"] == MFA
    assert abs(claims.claims["auth_time"] - time.time()) < 60
    allowed = await http.get("/api/payouts/1", headers={"authorization": f"Bearer {strong}"})
    assert allowed.status_code == 200
    await http.aclose()


async def test_other_credentials_and_old_logins_are_refused(
    app: GatewayApp, issuer: str, deployment: Deployment, runtime: Any
) -> None:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=issuer)
    # A JWT from the external issuer with acr=mfa but an auth_time too old.
    old = deployment.jwt(acr=MFA, auth_time=int(time.time()) - 3600)
    routes = [r.name for r in runtime.gateway.routes.routes]
    assert routes[0] == "sensitive"
    response = await http.get("/api/payouts/1", headers={"authorization": f"Bearer {old}"})
    assert response.status_code == 401
    assert _challenge(response)["error"] == "insufficient_user_authentication"
    fresh = deployment.jwt(acr=MFA, auth_time=int(time.time()) - 5)
    ok = await http.get("/api/payouts/1", headers={"authorization": f"Bearer {fresh}"})
    assert ok.status_code == 200
    no_acr = deployment.jwt(auth_time=int(time.time()))
    assert (await http.get("/api/payouts/1", headers={"authorization": f"Bearer {no_acr}"})
            ).status_code == 401  # fmt: skip
    await http.aclose()
