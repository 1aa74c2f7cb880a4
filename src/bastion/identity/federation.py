"""Login with an external OpenID provider (OpenID Connect Core 1.0, authorization code
flow with PKCE), as a relying party: discovery pinned to the configured issuer, ``state``
and ``nonce`` bound to the browser session, the ID token's signature (the provider's
JWKS, an algorithm allow-list), ``iss``, ``aud``, ``azp``, ``exp``, ``iat`` and ``nonce``
checked (§3.1.3.7). Which local account it signs in to is :class:`Linker`'s business.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from bastion.config import LoginProviderConfig
from bastion.model import Clock, system_clock

if TYPE_CHECKING:  # httpx (and the CLI it imports) loads only where a client is made
    import httpx

ID_TOKEN_ALGS = ["RS256", "PS256", "ES256", "EdDSA"]
LEEWAY = 60
METADATA_SECONDS = 3600
MAX_DOCUMENT_BYTES = 512 * 1024  # a discovery document, a JWKS or a token response
CALL_SECONDS = 15.0
FLOW_SECONDS = 600


class FederationError(Exception):
    """The provider's answer is not acceptable; the message is for the log."""


@dataclass(frozen=True, slots=True)
class Started:
    url: str  # where to send the browser
    state: dict[str, Any]  # what the session must remember


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    amr: tuple[str, ...]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ExternalProvider:
    """One configured provider (``transport`` only for tests)."""

    def __init__(
        self, config: LoginProviderConfig, redirect_uri: str, *,
        transport: httpx.AsyncBaseTransport | None = None, clock: Clock = system_clock,
    ) -> None:  # fmt: skip
        self.config = config
        self.redirect_uri = redirect_uri
        self._transport = transport
        self._clock = clock
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: KeySet | None = None

    def _client(self) -> httpx.AsyncClient:
        import httpx

        return httpx.AsyncClient(transport=self._transport, timeout=10, follow_redirects=False)

    async def metadata(self) -> dict[str, Any]:

        if self._metadata is not None and time.monotonic() - self._metadata_at < METADATA_SECONDS:
            return self._metadata
        url = str(self.config.discovery_url or "") or (
            self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        )
        status, data = await self._fetch_json("discovery", "GET", url)
        if status != 200:
            raise FederationError(f"discovery failed: HTTP {status}")
        if not isinstance(data, dict) or data.get("issuer") != self.config.issuer:
            raise FederationError("discovery document names another issuer")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(data.get(name), str):
                raise FederationError(f"discovery document has no {name}")
        self._metadata, self._metadata_at, self._jwks = data, time.monotonic(), None
        return data

    async def start(self, *, tx: str, link: bool) -> Started:
        """The authorization request (PKCE S256, state, nonce)."""
        meta = await self.metadata()
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        query = urlencode({
            "response_type": "code", "client_id": self.config.client_id,
            "redirect_uri": self.redirect_uri, "scope": " ".join(self.config.scopes),
            "state": state, "nonce": nonce, "code_challenge": challenge,
            "code_challenge_method": "S256",
        })  # fmt: skip
        remembered = {"provider": self.config.name, "state": state, "nonce": nonce,
                      "verifier": verifier, "tx": tx, "link": link,
                      "exp": int(self._clock()) + FLOW_SECONDS}  # fmt: skip
        return Started(f"{meta['authorization_endpoint']}?{query}", remembered)

    async def finish(self, remembered: dict[str, Any], params: dict[str, str]) -> ExternalIdentity:
        """Check the callback against what the session remembered, redeem the code and
        verify the ID token."""

        if self._clock() > remembered.get("exp", 0):
            raise FederationError("the sign-in took too long")
        if not hmac.compare_digest(params.get("state", ""), str(remembered.get("state", ""))):
            raise FederationError("state mismatch")
        if "error" in params or not params.get("code"):
            raise FederationError(f"provider answered {params.get('error', 'no code')!r}")
        if "iss" in params and params["iss"] != self.config.issuer:  # RFC 9207
            raise FederationError("iss mismatch in the authorization response")
        meta = await self.metadata()
        status, tokens = await self._fetch_json(
            "token request", "POST", meta["token_endpoint"],
            data={"grant_type": "authorization_code", "code": params["code"],
                  "redirect_uri": self.redirect_uri, "code_verifier": remembered["verifier"]},
            auth=(self.config.client_id, self.config.client_secret.get_secret_value()),
        )  # fmt: skip
        if status != 200 or not isinstance(tokens, dict):
            raise FederationError(f"token endpoint answered {status}")
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise FederationError("token endpoint gave no id_token")
        return await self._identity(id_token, str(remembered["nonce"]))

    async def _keys(self, refresh: bool = False) -> KeySet:

        if self._jwks is None or refresh:
            meta = await self.metadata()
            status, data = await self._fetch_json("JWKS fetch", "GET", meta["jwks_uri"])
            if status != 200 or not isinstance(data, dict):
                raise FederationError(f"JWKS fetch failed: HTTP {status}")
            try:
                self._jwks = KeySet.import_key_set(data)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise FederationError(f"JWKS fetch failed: {exc.__class__.__name__}") from None
        return self._jwks

    async def _fetch_json(self, what: str, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
        """(status, JSON body) of one call to the provider: the body read as it arrives
        (decompressed) and refused past :data:`MAX_DOCUMENT_BYTES`, the whole call within
        :data:`CALL_SECONDS`. A configured provider is trusted with identities, not with
        this worker's memory.

        Raises:
            FederationError: the call failed, took too long, or its body is too large or
                not JSON.
        """
        import httpx

        body = bytearray()
        try:
            async with (
                asyncio.timeout(CALL_SECONDS),
                self._client() as http,
                http.stream(method, url, **kwargs) as response,
            ):
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise FederationError(f"{what} failed: the answer is too large")
            return response.status_code, json.loads(body) if body else None
        except (httpx.HTTPError, TimeoutError, ValueError, RecursionError) as exc:
            raise FederationError(f"{what} failed: {exc.__class__.__name__}") from None

    async def _identity(self, id_token: str, nonce: str) -> ExternalIdentity:
        try:
            try:
                token = jwt.decode(id_token, await self._keys(), algorithms=ID_TOKEN_ALGS)
            except JoseError:  # perhaps a rotated key: fetch the JWKS once more
                token = jwt.decode(id_token, await self._keys(True), algorithms=ID_TOKEN_ALGS)
        except (JoseError, ValueError) as exc:
            raise FederationError(f"ID token refused: {exc.__class__.__name__}") from None
        claims = token.claims
        now = self._clock()
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        checks = {
            "iss": claims.get("iss") == self.config.issuer,
            "aud": self.config.client_id in audiences,
            "azp": len(audiences) == 1 or claims.get("azp") == self.config.client_id,
            "exp": isinstance(claims.get("exp"), int | float) and now < claims["exp"] + LEEWAY,
            "iat": isinstance(claims.get("iat"), int | float) and claims["iat"] < now + LEEWAY,
            "nonce": hmac.compare_digest(str(claims.get("nonce", "")), nonce),
            "sub": isinstance(claims.get("sub"), str) and 0 < len(claims["sub"]) <= 255,
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise FederationError(f"ID token claims refused: {', '.join(failed)}")
        email = claims.get("email")
        amr = claims.get("amr")
        return ExternalIdentity(
            issuer=self.config.issuer,
            subject=claims["sub"],
            email=email if isinstance(email, str) else None,
            email_verified=claims.get("email_verified") is True,
            amr=tuple(a for a in amr if isinstance(a, str))[:8] if isinstance(amr, list) else (),
        )
