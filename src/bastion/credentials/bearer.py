"""JWT bearer tokens in the ``Authorization`` header (RFC 6750 §2.1, RFC 7519, RFC 8725).

Only the header form is accepted. RFC 6750 §2.3 (``access_token`` in the query string)
puts a credential in logs, history and ``Referer``: bastion refuses such a request
outright rather than ignoring the parameter. The §2.2 form body is not read.

The token's unverified ``iss`` only chooses which configured issuer verifies it; that
issuer then checks everything (signature, ``iss``, ``aud``, times). Verified tokens are
cached until ``exp`` and the revocation hook is asked on every request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

from bastion.config import AuthMethod, IssuerConfig
from bastion.errors import (
    AuthenticationError,
    BadRequest,
    BastionError,
    CredentialRefused,
    InvalidToken,
)
from bastion.model import Clock, Principal, RequestView, system_clock
from bastion.tokens._compact import parse_compact
from bastion.tokens.cache import RevocationHook, VerifiedTokenCache, token_key
from bastion.tokens.verify import JwtVerifier

if TYPE_CHECKING:  # httpx (and the CLI it imports) loads only where a client is made
    import httpx

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_REALM = re.compile(r"[\x20-\x7e]{1,64}")
_QUERY_SEPARATORS = re.compile(r"[&;]")
_CHALLENGE_ERRORS = frozenset({"invalid_request", "invalid_token", "insufficient_scope"})
DEFAULT_MAX_AUTHORIZATION_BYTES = 8 * 1024


def _bearer_value(value: str | None) -> str | None:
    """What follows ``Bearer`` (scheme case-insensitive, RFC 7235 §2.1), else None."""
    if value is None:
        return None
    scheme, _, rest = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return rest.lstrip(" ")


def token_in_query(query: str) -> bool:
    """Whether the query string carries an ``access_token`` parameter.

    Any case, percent-encoding, and ``;`` as well as ``&`` separators count: some upstream
    frameworks read them, so bastion must not miss them.
    """
    lowered = query.lower()
    if "access" not in lowered and "%" not in lowered:
        return False
    for field in _QUERY_SEPARATORS.split(query):
        name = unquote_plus(field.partition("=")[0], errors="replace")
        if name.strip().lower() == "access_token":
            return True
    return False


class BearerAuthenticator:
    """The ``jwt`` credential method over one or more trusted issuers.

    Args:
        verifiers: one :class:`JwtVerifier` per configured issuer.
        realm: the ``realm`` of the ``WWW-Authenticate`` challenge.
        api_key_prefix: ``Authorization: Bearer <prefix>...`` is an API key, not a JWT.
        max_authorization_bytes: a longer ``Authorization`` header is a bad request.
        cache: verified-token cache; ``None`` verifies every request.
        revoked: asked for every principal, cached or fresh; True rejects the token.
        http_client: closed by :meth:`aclose` (the JWKS client of :meth:`from_config`).
    """

    method = AuthMethod.JWT
    credential_headers: tuple[str, ...] = ()  # the verified-token cache already remembers

    def __init__(
        self,
        verifiers: Iterable[JwtVerifier],
        *,
        realm: str = "bastion",
        api_key_prefix: str = "bst_",
        max_authorization_bytes: int = DEFAULT_MAX_AUTHORIZATION_BYTES,
        cache: VerifiedTokenCache | None = None,
        revoked: RevocationHook | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        if not _REALM.fullmatch(realm) or '"' in realm or "\\" in realm:
            raise ValueError("realm must be 1-64 printable ASCII characters without quotes")
        self.realm = realm
        self._prefix = api_key_prefix
        self._max_bytes = max_authorization_bytes
        self._cache = cache
        self._revoked = revoked
        self._http_client = http_client
        self._by_iss: dict[str, list[JwtVerifier]] = {}
        for verifier in verifiers:
            self._by_iss.setdefault(verifier.issuer, []).append(verifier)

    @classmethod
    def from_config(
        cls,
        issuers: Sequence[IssuerConfig],
        *,
        clock: Clock = system_clock,
        realm: str = "bastion",
        api_key_prefix: str = "bst_",
        max_authorization_bytes: int = DEFAULT_MAX_AUTHORIZATION_BYTES,
        cache_entries: int = 10_000,
        revoked: RevocationHook | None = None,
        http_client: httpx.AsyncClient | None = None,
        extra_verifiers: Sequence[JwtVerifier] = (),
    ) -> BearerAuthenticator:
        """Build the authenticator for ``Config.issuers``; one HTTP client for all JWKS.

        ``extra_verifiers`` join the configured ones (bastion's own issuer), sharing the
        verified-token cache: a token is chosen a verifier by its ``iss`` only on a miss.

        ``cache_entries=0`` disables the verified-token cache. ``revoked`` is e.g. an
        :class:`~bastion.tokens.InMemoryRevocations`.
        """
        owned = None
        fetches = any(i.jwks_url is not None or i.discovery_url is not None for i in issuers)
        if http_client is None and fetches:
            import httpx

            http_client = owned = httpx.AsyncClient(timeout=5.0, follow_redirects=False)
        verifiers = [
            JwtVerifier.from_config(i, http_client=http_client, clock=clock) for i in issuers
        ]
        verifiers.extend(extra_verifiers)
        cache = (
            VerifiedTokenCache(max_entries=cache_entries, clock=clock) if cache_entries else None
        )
        return cls(
            verifiers,
            realm=realm,
            api_key_prefix=api_key_prefix,
            max_authorization_bytes=max_authorization_bytes,
            cache=cache,
            revoked=revoked,
            http_client=owned,
        )

    def present(self, request: RequestView) -> bool:
        if request.query and token_in_query(request.query):
            return True  # authenticate() refuses it loudly
        token = _bearer_value(request.headers.get("authorization"))
        return token is not None and not token.startswith(self._prefix)

    def account(self, request: RequestView) -> str | None:
        return None  # an unverified token names no account worth throttling

    def challenge(self, error: str | None = None) -> str:
        """RFC 6750 §3: no ``error`` when no credential was sent; never a description."""
        if error in _CHALLENGE_ERRORS:
            return f'Bearer realm="{self.realm}", error="{error}"'
        return f'Bearer realm="{self.realm}"'

    def _token(self, request: RequestView) -> str:
        if request.query and token_in_query(request.query):
            raise CredentialRefused(
                "token_in_query",
                detail="Access tokens in the URL are refused; "
                "send them in the Authorization header.",
            )
        value = request.headers.get("authorization")
        if value is None:
            raise AuthenticationError("no_bearer_token")
        if len(value) > self._max_bytes:
            raise BadRequest("authorization_too_large")
        if not value.isascii():
            raise BadRequest("malformed_authorization")
        token = _bearer_value(value)
        if token is None:
            raise AuthenticationError("no_bearer_token")
        return token

    def _check_syntax(self, token: str) -> None:
        """What a token must look like before it is parsed (a cached one passed this)."""
        if not _B64TOKEN.fullmatch(token):
            raise BadRequest("malformed_authorization")
        if token.startswith(self._prefix):
            raise AuthenticationError("api_key_not_jwt")

    async def authenticate(
        self, request: RequestView, issuers: frozenset[str] | None = None
    ) -> Principal:
        """Verify the bearer JWT.

        Args:
            request: the request.
            issuers: names of the issuers this route accepts (``RouteConfig.issuers``);
                ``None`` accepts every configured issuer.

        Raises:
            CredentialRefused: ``access_token`` in the query string.
            BadRequest: a malformed or oversized ``Authorization`` header.
            InvalidToken: any verification failure (reason is private).
            Unavailable: the issuer's keys could never be fetched (fail closed).
        """
        token = self._token(request)
        key = token_key(token)
        cached = self._cache.get(key) if self._cache is not None else None
        if cached is not None and (issuers is None or cached.issuer_name in issuers):
            principal = cached.principal
        else:
            self._check_syntax(token)
            name, principal = await self._verify(token, issuers)
            if self._cache is not None and not self._is_revoked(principal):
                self._cache.put(key, name, principal, len(token))
        if self._is_revoked(principal):
            raise InvalidToken("revoked")
        return principal

    def authenticate_now(
        self, request: RequestView, issuers: frozenset[str] | None = None
    ) -> Principal | None:
        """The principal of a token verified before (cache hit, not revoked), without I/O;
        None for anything else, which :meth:`authenticate` then verifies or refuses."""
        token = _bearer_value(request.headers.get("authorization"))
        return None if token is None else self.cached(token, request, issuers)

    def cached(
        self, token: str, request: RequestView, issuers: frozenset[str] | None = None
    ) -> Principal | None:
        """:meth:`authenticate_now` for the request's bearer ``token``, already read."""
        cache = self._cache
        if cache is None or len(token) > self._max_bytes:
            return None
        if request.query and token_in_query(request.query):
            return None  # authenticate() refuses it
        # A verified token is ASCII: any other text misses, and authenticate() says why.
        found = cache.get(token_key(token), count_miss=False)
        if found is None or (issuers is not None and found.issuer_name not in issuers):
            return None
        principal = found.principal
        return None if self._is_revoked(principal) else principal

    def revalidator(self, request: RequestView, principal: Principal) -> None:
        return None  # credential_headers is empty: never asked

    def _is_revoked(self, principal: Principal) -> bool:
        return self._revoked is not None and self._revoked(principal)

    async def _verify(self, token: str, issuers: frozenset[str] | None) -> tuple[str, Principal]:
        parsed = parse_compact(token, max_bytes=self._max_bytes)
        claims = parsed.claims()
        iss = claims.get("iss")
        candidates = self._by_iss.get(iss) if isinstance(iss, str) else None
        if not candidates:
            raise InvalidToken("unknown_issuer")
        allowed = [v for v in candidates if issuers is None or v.name in issuers]
        if not allowed:
            raise InvalidToken("issuer_not_allowed")
        errors: list[BastionError] = []
        for verifier in allowed:
            try:
                return verifier.name, await verifier.verify_parsed(parsed, dict(claims))
            except BastionError as exc:  # InvalidToken or Unavailable: try the next config
                errors.append(exc)
        raise errors[0]

    async def aclose(self) -> None:
        """Close the JWKS HTTP client this authenticator made."""
        if self._http_client is not None:
            await self._http_client.aclose()
