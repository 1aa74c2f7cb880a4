"""``id_token_hint`` at the authorization endpoint (OIDC Core §3.1.2.1): checked against
the signed-in user; another user is ``login_required``, a hint that is not one of this
server's ID tokens for this client is ``invalid_request``. Both go back to the client
with ``state`` and ``iss`` (RFC 9207)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from bastion.gateway.app import GatewayApp
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


class Agent:
    """One browser (one session) for one client; signs in as ``username`` when asked."""

    def __init__(self, app: GatewayApp, issuer: str, reg: Registered, username: str) -> None:
        self.agent = browser(app, issuer)
        self.reg = reg
        self.username = username
        self.issuer = issuer
        self.logins = 0

    async def authorize(self, **extra: str) -> dict[str, str]:
        """The query of the redirect back to the client."""
        verifier, challenge = pkce()
        params = {"response_type": "code", "client_id": self.reg.client_id,
                  "redirect_uri": REDIRECT, "scope": "openid", "state": "st",
                  "code_challenge": challenge, "code_challenge_method": "S256"}  # fmt: skip
        params.update(extra)
        response = await self.agent.get("/oauth2/authorize?" + urlencode(params))
        for _ in range(8):
            if response.status_code == 200 and 'name="decision"' in response.text:
                response = await consent(self.agent, response)
                continue
            location = next_location(response)
            if location.startswith(REDIRECT):
                query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
                query["_verifier"] = verifier
                return query
            if "/oauth2/login" in location:
                self.logins += 1
                response = await login(self.agent, response, username=self.username)
            else:
                response = await self.agent.get(location)
        raise AssertionError("no redirect to the client")

    async def id_token(self) -> str:
        query = await self.authorize()
        data = {"grant_type": "authorization_code", "code": query["code"],
                "redirect_uri": REDIRECT, "code_verifier": query["_verifier"]}  # fmt: skip
        basic = httpx.BasicAuth(self.reg.client_id, self.reg.secret or "")
        response = await self.agent.post("/oauth2/token", data=data, auth=basic)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return str(body["id_token"])


@pytest.fixture
async def web(clients: Clients) -> Registered:
    return await clients.web(skip_consent=True)


async def test_hint_naming_the_signed_in_user_is_honoured(
    app: GatewayApp, issuer: str, web: Registered
) -> None:
    alice = Agent(app, issuer, web, "alice")
    hint = await alice.id_token()
    query = await alice.authorize(prompt="none", id_token_hint=hint)
    assert "code" in query
    assert query["iss"] == issuer


@pytest.mark.parametrize("prompt", ["none", ""])
async def test_hint_naming_another_user_is_login_required(
    app: GatewayApp, issuer: str, web: Registered, prompt: str
) -> None:
    root_hint = await Agent(app, issuer, web, "root").id_token()
    alice = Agent(app, issuer, web, "alice")
    await alice.id_token()  # alice is signed in in this browser
    extra = {"prompt": prompt} if prompt else {}
    query = await alice.authorize(id_token_hint=root_hint, **extra)
    assert query["error"] == "login_required"
    assert "code" not in query
    assert (query["state"], query["iss"]) == ("st", issuer)


async def test_prompt_login_checks_the_hint_against_the_new_login(
    app: GatewayApp, issuer: str, web: Registered
) -> None:
    root_hint = await Agent(app, issuer, web, "root").id_token()
    agent = Agent(app, issuer, web, "alice")
    await agent.id_token()
    agent.username = "root"  # the user signs in again, as the hinted user
    query = await agent.authorize(prompt="login", id_token_hint=root_hint)
    assert "code" in query
    assert agent.logins == 2
    agent.username = "alice"  # ... or as someone else: no code for the wrong user
    query = await agent.authorize(prompt="login", id_token_hint=root_hint)
    assert query["error"] == "login_required"


async def test_hint_that_is_not_our_id_token_for_this_client_is_invalid_request(
    app: GatewayApp, issuer: str, clients: Clients, web: Registered
) -> None:
    other = await clients.web(skip_consent=True)
    other_hint = await Agent(app, issuer, other, "alice").id_token()
    alice = Agent(app, issuer, web, "alice")
    own_hint = await alice.id_token()
    async with clients.oauth_client(await clients.machine(), scope="read") as machine:
        access_token = (
            await machine.fetch_token("/oauth2/token", grant_type="client_credentials")
        )["access_token"]
    header, payload, signature = own_hint.split(".")
    forged = f"{header}.{payload[:-4]}AAAA.{signature}"
    for hint in (other_hint, access_token, forged, "not-a-jwt"):
        query = await alice.authorize(id_token_hint=hint)
        assert query["error"] == "invalid_request", hint
        assert (query["state"], query["iss"]) == ("st", issuer)
    # Not signed in at all: the hint is still checked before the login form.
    fresh = Agent(app, issuer, web, "alice")
    assert (await fresh.authorize(id_token_hint="not-a-jwt"))["error"] == "invalid_request"
    assert fresh.logins == 0
