"""The external-provider relying party against a fake provider (httpx.MockTransport):
ID token signature, iss, aud, azp, nonce, exp; state; discovery pinned to the issuer."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from bastion.config import LoginProviderConfig
from bastion.identity.federation import ExternalProvider, FederationError

ISSUER = "https://idp.example"
KEY = ECKey.generate_key("P-256", private=True, auto_kid=True)
OTHER_KEY = ECKey.generate_key("P-256", private=True, auto_kid=True)


class FakeIdp:
    def __init__(self) -> None:
        self.claims: dict[str, Any] = {}
        self.key = KEY
        self.issuer = ISSUER
        self.token_requests: list[dict[str, list[str]]] = []
        self.replies: dict[str, httpx.Response] = {}  # path -> a misbehaving answer

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path in self.replies:
            return self.replies[path]
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={
                "issuer": self.issuer, "authorization_endpoint": f"{ISSUER}/auth",
                "token_endpoint": f"{ISSUER}/token", "jwks_uri": f"{ISSUER}/jwks"})  # fmt: skip
        if path == "/jwks":
            return httpx.Response(200, json=KeySet([KEY]).as_dict(private=False))
        if path == "/token":
            self.token_requests.append(parse_qs(request.content.decode()))
            header = {"alg": "ES256", "kid": self.key.kid}
            token = jwt.encode(header, self.claims, self.key)
            return httpx.Response(200, json={"id_token": token, "token_type": "Bearer"})
        return httpx.Response(404)


def provider(idp: FakeIdp) -> ExternalProvider:
    config = LoginProviderConfig(name="idp", display_name="IdP", issuer=ISSUER,
                                 client_id="bastion", client_secret="s3cret")  # fmt: skip
    return ExternalProvider(config, "https://bastion.example/cb",
                            transport=httpx.MockTransport(idp.handler))  # fmt: skip


async def _run(idp: FakeIdp, **claims: Any) -> Any:
    p = provider(idp)
    started = await p.start(tx="t", link=False)
    query = {k: v[0] for k, v in parse_qs(urlsplit(started.url).query).items()}
    assert query["code_challenge_method"] == "S256"
    assert query["redirect_uri"] == "https://bastion.example/cb"
    now = int(time.time())
    idp.claims = {"iss": ISSUER, "aud": "bastion", "sub": "ext-1", "iat": now, "exp": now + 300,
                  "nonce": query["nonce"], "email": "A@x.example", "email_verified": True,
                  **claims}  # fmt: skip
    idp.claims = {k: v for k, v in idp.claims.items() if v is not None}
    return await p.finish(started.state, {"code": "c", "state": query["state"]})


async def test_a_good_id_token_is_accepted() -> None:
    idp = FakeIdp()
    identity = await _run(idp)
    assert (identity.issuer, identity.subject) == (ISSUER, "ext-1")
    assert identity.email_verified is True
    sent = idp.token_requests[0]
    assert sent["grant_type"] == ["authorization_code"]
    assert len(sent["code_verifier"][0]) >= 43


@pytest.mark.parametrize(
    "claims",
    [{"iss": "https://evil.example"}, {"aud": "someone-else"}, {"nonce": "replayed"},
     {"exp": int(time.time()) - 3600}, {"aud": ["bastion", "other"]}, {"sub": None}],
)  # fmt: skip
async def test_bad_id_tokens_are_refused(claims: dict[str, Any]) -> None:
    with pytest.raises(FederationError):
        await _run(FakeIdp(), **claims)


async def test_a_token_signed_by_another_key_is_refused() -> None:
    idp = FakeIdp()
    idp.key = OTHER_KEY
    with pytest.raises(FederationError, match="ID token refused"):
        await _run(idp)


async def test_state_and_discovery_are_checked() -> None:
    idp = FakeIdp()
    p = provider(idp)
    started = await p.start(tx="", link=False)
    with pytest.raises(FederationError, match="state"):
        await p.finish(started.state, {"code": "c", "state": "forged"})
    with pytest.raises(FederationError, match="too long"):
        await p.finish({**started.state, "exp": 0}, {"code": "c", "state": started.state["state"]})
    idp.issuer = "https://impostor.example"
    with pytest.raises(FederationError, match="another issuer"):
        await provider(idp).start(tx="", link=False)


@pytest.mark.parametrize(
    ("path", "reply", "message"),
    [
        ("/token", httpx.Response(200, json=["id_token"]), "token endpoint answered 200"),
        ("/token", httpx.Response(200, json={"access_token": "x"}), "no id_token"),
        ("/token", httpx.Response(200, content=b"{" * 100_000), "token request failed"),
        ("/token", httpx.Response(200, content=b" " * (600 * 1024)), "too large"),
        ("/jwks", httpx.Response(200, json=[1, 2]), "JWKS fetch failed"),
        ("/jwks", httpx.Response(200, json={"keys": "none"}), "JWKS fetch failed"),
        ("/jwks", httpx.Response(503), "JWKS fetch failed: HTTP 503"),
        ("/.well-known/openid-configuration", httpx.Response(200, text="<html>"), "discovery"),
    ],
)
async def test_a_misbehaving_provider_is_a_federation_error(
    path: str, reply: httpx.Response, message: str
) -> None:
    # Never an AttributeError (a 500 at the callback) nor an unbounded read.
    idp = FakeIdp()
    idp.replies[path] = reply
    with pytest.raises(FederationError, match=message):
        await _run(idp)
