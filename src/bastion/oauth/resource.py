"""The resource-server side of bastion's own tokens: the gateway, ``/userinfo``,
introspection and revocation all verify them here.

JWT access tokens are verified like any issuer's (:class:`~bastion.tokens.JwtVerifier`)
with an implicit issuer: ``iss`` = ``Config.issuer_url``, ``aud`` = ``oauth.audience``
(default: the issuer URL), ``typ`` = ``at+jwt`` only (RFC 9068 §4; an ID token is refused),
keys from the database (:class:`~bastion.oauth.keys.OwnKeySource`). Opaque tokens
(``bat_…``) are looked up by their HMAC and cached briefly; revocation is checked on every
use against the local mirror.
"""

from __future__ import annotations

import hashlib
from types import MappingProxyType
from typing import Any

from bastion.config import Algorithm, AuthMethod, IssuerConfig
from bastion.credentials.bearer import _B64TOKEN, BearerAuthenticator, _bearer_value
from bastion.errors import BadRequest, InvalidToken
from bastion.model import Clock, CredentialType, Principal, RequestView, system_clock
from bastion.oauth._context import ACCESS_TOKEN_TYPES, ID_TOKEN_ALGS, OPAQUE_PREFIX
from bastion.oauth._store import GrantStore
from bastion.oauth.keys import OwnKeySource, SigningKeys
from bastion.store.cache import TTLCache
from bastion.tokens import InMemoryRevocations, JwtVerifier
from bastion.tokens._compact import parse_compact
from bastion.tokens.verify import verify_signature

ISSUER_NAME = "bastion"
OPAQUE_CACHE_SECONDS = 30.0


class OwnTokens:
    """Verifies the access tokens this authorization server issued."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: SigningKeys,
        grants: GrantStore,
        revocations: InMemoryRevocations,
        clock: Clock = system_clock,
    ) -> None:
        self.issuer = issuer
        self.keys = keys
        self.grants = grants
        self.revocations = revocations
        self._clock = clock
        self.config = IssuerConfig(
            name=ISSUER_NAME,
            issuer=issuer,
            audiences=[audience],
            keys=[],  # the key source below replaces static keys
            algorithms=[Algorithm(a) for a in ID_TOKEN_ALGS],
            leeway_seconds=0,
        )
        self.source = OwnKeySource(keys)
        self.verifier = JwtVerifier(
            self.config, self.source, clock=clock, token_types=ACCESS_TOKEN_TYPES
        )
        self._opaque: TTLCache[bytes, tuple[tuple[dict[str, Any], float] | None]] = TTLCache(
            10_000, OPAQUE_CACHE_SECONDS, clock=clock
        )

    async def signed_claims(self, token: str) -> dict[str, Any] | None:
        """Claims of a JWT access token this server signed (expired or not); else None."""
        try:
            parsed = parse_compact(token)
            await verify_signature(
                parsed, self.source, frozenset(ID_TOKEN_ALGS), token_types=ACCESS_TOKEN_TYPES
            )
            claims = parsed.claims()
        except (InvalidToken, BadRequest):
            return None
        return claims if claims.get("iss") == self.issuer else None

    async def opaque_claims(self, token: str) -> tuple[dict[str, Any], float] | None:
        """``(claims, exp)`` of an opaque token (cached briefly); None if unknown."""
        key = hashlib.sha256(token.encode()).digest()
        hit = self._opaque.get(key)
        if hit is not None:
            return hit[0]
        found = await self.grants.find_opaque(token)
        value = None if found is None else (found[0], found[1].timestamp())
        self._opaque.set(key, (value,))  # unknown tokens too: garbage cannot flood the DB
        return value

    async def principal(self, token: str) -> Principal:
        """Verify an access token (JWT or opaque) fully, revocation included.

        Raises:
            InvalidToken: unknown, expired, revoked or otherwise invalid.
        """
        if token.startswith(OPAQUE_PREFIX):
            found = await self.opaque_claims(token)
            if found is None:
                raise InvalidToken("unknown_opaque_token")
            claims, exp = found
            if self._clock() >= exp:
                raise InvalidToken("expired")
            principal = opaque_principal(claims, exp)
        else:
            principal = await self.verifier.verify(token)
        if self.revocations(principal):
            raise InvalidToken("revoked")
        return principal


def opaque_principal(claims: dict[str, Any], exp: float) -> Principal:
    roles = claims.get("roles") or []
    return Principal(
        subject=str(claims["sub"]),
        credential=CredentialType.JWT,
        scopes=frozenset(str(claims.get("scope", "")).split()),
        roles=frozenset(roles if isinstance(roles, list) else []),
        issuer=str(claims.get("iss")),
        client_id=claims.get("client_id"),
        expires_at=exp,
        claims=MappingProxyType(dict(claims)),
    )


class OwnTokenAuthenticator:
    """The gateway's ``jwt`` method: JWTs of the configured issuers and of bastion itself
    (``bearer`` holds both verifiers and one verified-token cache, so a cached token costs
    no parsing), plus bastion's opaque tokens."""

    method = AuthMethod.JWT
    credential_headers: tuple[str, ...] = ()  # the bearer's verified-token cache remembers

    def __init__(self, bearer: BearerAuthenticator, tokens: OwnTokens) -> None:
        self.bearer = bearer
        self.tokens = tokens

    def present(self, request: RequestView) -> bool:
        return self.bearer.present(request)

    def account(self, request: RequestView) -> str | None:
        return None

    def challenge(self, error: str | None = None) -> str:
        return self.bearer.challenge(error)

    def authenticate_now(
        self, request: RequestView, issuers: frozenset[str] | None = None
    ) -> Principal | None:
        token = _bearer_value(request.headers.get("authorization"))
        if token is None or token.startswith(OPAQUE_PREFIX):
            return None  # opaque tokens are looked up in the store: authenticate()
        return self.bearer.cached(token, request, issuers)

    def revalidator(self, request: RequestView, principal: Principal) -> None:
        return None  # credential_headers is empty: never asked

    async def authenticate(
        self, request: RequestView, issuers: frozenset[str] | None = None
    ) -> Principal:
        token = _bearer_value(request.headers.get("authorization"))
        if (
            token is not None
            and token.startswith(OPAQUE_PREFIX)
            and not request.query
            and len(token) < 200
            and _B64TOKEN.fullmatch(token)
        ):
            if issuers is not None and ISSUER_NAME not in issuers:
                raise InvalidToken("issuer_not_allowed")
            return await self.tokens.principal(token)
        return await self.bearer.authenticate(request, issuers)

    async def aclose(self) -> None:
        await self.bearer.aclose()
