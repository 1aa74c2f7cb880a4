"""JWT bearer-token verification for one trusted issuer (RFC 7519 §7.2, RFC 8725).

Order of checks: strict syntax (``_compact``), the header against bastion's policy, the
signature with a key the issuer published, then the claims. Claims are judged only on
authentic tokens, so an audit reason such as ``expired`` is never an attacker's story.

Private reason codes raised as ``InvalidToken(reason)``:

* syntax: ``too_large``, ``malformed``, ``bad_alg``, ``malformed_header``, ``malformed_claims``
* header: ``alg_not_allowed``, ``unknown_crit``, ``embedded_key``, ``unsupported_header``,
  ``bad_typ``
* keys: ``unknown_kid``, ``missing_kid``, ``alg_key_mismatch``, ``bad_signature``
* claims: ``bad_issuer``, ``missing_aud``, ``bad_audience``, ``missing_exp``, ``expired``,
  ``not_yet_valid``, ``iat_in_future``, ``missing_iat``, ``too_old``, ``missing_sub``,
  ``bad_scope_claim``, ``bad_roles_claim``, ``bad_client_id``
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry

from bastion.config import IssuerConfig
from bastion.errors import InvalidToken
from bastion.model import Clock, CredentialType, Principal, system_clock
from bastion.tokens._compact import MAX_TOKEN_BYTES, ParsedJws, is_number, parse_compact
from bastion.tokens._keyset import KeySource, StaticKeySource, VerificationKey
from bastion.tokens.discovery import DiscoveryKeySource
from bastion.tokens.jwks import JwksCache

if TYPE_CHECKING:  # httpx (and the CLI it imports) loads only where a client is made
    import httpx

# RFC 8725 §3.11 explicit typing: an ID token, logout token or DPoP proof is not an
# access token. A missing ``typ`` is accepted (most issuers omit it).
DEFAULT_TOKEN_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
# Keys named by the token itself are never trusted (RFC 8725 §3.10 / CVE-2018-0114 class).
_EMBEDDED_KEY_HEADERS = ("jwk", "jku", "x5u", "x5c")
# RFC 7797 unencoded payloads and JWE compression are not offered.
_UNSUPPORTED_HEADERS = ("b64", "zip", "enc")
_MAX_SAME_KID = 4
_ALG_MODELS = JWSRegistry.algorithms  # joserfc's JWS algorithm implementations by name


def check_header(header: Mapping[str, Any], token_types: frozenset[str]) -> None:
    """bastion's header policy, beyond the algorithm allow-list.

    Raises:
        InvalidToken: ``unknown_crit``, ``embedded_key``, ``unsupported_header``, ``bad_typ``,
            ``malformed_header``.
    """
    # RFC 7515 §4.1.11: bastion understands no extension, so any ``crit`` is fatal.
    if "crit" in header:
        raise InvalidToken("unknown_crit")
    if any(name in header for name in _EMBEDDED_KEY_HEADERS):
        raise InvalidToken("embedded_key")
    if any(name in header for name in _UNSUPPORTED_HEADERS):
        raise InvalidToken("unsupported_header")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in token_types):
        raise InvalidToken("bad_typ")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidToken("malformed_header")


async def verify_signature(
    parsed: ParsedJws,
    keys: KeySource,
    algorithms: frozenset[str],
    *,
    token_types: frozenset[str] = DEFAULT_TOKEN_TYPES,
) -> VerificationKey:
    """Check a parsed JWS's header and signature; return the key that verified it.

    Args:
        parsed: the token, syntax already checked.
        keys: the issuer's keys.
        algorithms: the allowed ``alg`` values (``none`` is never one).
        token_types: accepted ``typ`` values, lower case.

    Raises:
        InvalidToken: see the module docstring.
        Unavailable: the issuer's keys could never be fetched.
    """
    alg = parsed.header["alg"]
    if alg not in algorithms or alg not in _ALG_MODELS:
        raise InvalidToken("alg_not_allowed")
    check_header(parsed.header, token_types)
    kid: str | None = parsed.header.get("kid")
    index = await keys.key_index(kid)
    candidates = index.candidates(kid)
    if kid is not None and not candidates:
        raise InvalidToken("unknown_kid")
    # Key confusion (RFC 8725 §2.1): the key's type must fit the token's alg.
    fitting = [key for key in candidates if alg in key.algorithms][:_MAX_SAME_KID]
    if not fitting:
        raise InvalidToken("alg_key_mismatch")
    if kid is None and len(fitting) > 1:
        raise InvalidToken("missing_kid")
    model = _ALG_MODELS[alg]
    for key in fitting:
        try:
            if model.verify(parsed.signing_input, parsed.signature, key.key):
                return key
        except (JoseError, ValueError, TypeError):
            continue
    raise InvalidToken("bad_signature")


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if not is_number(value):
        raise InvalidToken("malformed_claims")
    return float(value)


def _scopes(claims: Mapping[str, Any], names: list[str]) -> frozenset[str]:
    for name in names:
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            return frozenset(value.split())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return frozenset(value)
        raise InvalidToken("bad_scope_claim")
    return frozenset()


def _roles(claims: Mapping[str, Any], name: str) -> frozenset[str]:
    value: Any = claims.get(name)
    if value is None and "." in name:  # a nested claim such as realm_access.roles
        value = claims
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return frozenset()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise InvalidToken("bad_roles_claim")


class JwtVerifier:
    """Verifies access tokens of one configured issuer.

    Args:
        issuer: the issuer's configuration.
        keys: where its keys come from; see :meth:`from_config`.
        clock: seconds since the epoch.
        max_token_bytes: longer tokens are refused unparsed.
        token_types: accepted ``typ`` header values (lower case) when one is present.
    """

    def __init__(
        self,
        issuer: IssuerConfig,
        keys: KeySource,
        *,
        clock: Clock = system_clock,
        max_token_bytes: int = MAX_TOKEN_BYTES,
        token_types: frozenset[str] = DEFAULT_TOKEN_TYPES,
    ) -> None:
        self.config = issuer
        self.name = issuer.name
        self.issuer = issuer.issuer
        self.keys = keys
        self._clock = clock
        self._max_bytes = max_token_bytes
        self._token_types = token_types
        self._algorithms = frozenset(a.value for a in issuer.algorithms)
        self._audiences = frozenset(issuer.audiences)
        self._leeway = issuer.leeway_seconds
        self._subject_claim = issuer.subject_claim

    @classmethod
    def from_config(
        cls,
        issuer: IssuerConfig,
        *,
        http_client: httpx.AsyncClient | None = None,
        clock: Clock = system_clock,
    ) -> JwtVerifier:
        """A verifier whose keys come from the issuer's one configured source."""
        keys: KeySource
        if issuer.hs256_secret is not None:
            keys = StaticKeySource.from_secret(issuer.hs256_secret.get_secret_value().encode())
        elif issuer.keys is not None:
            keys = StaticKeySource.from_jwks(issuer.keys)
        elif issuer.discovery_url is not None:
            keys = DiscoveryKeySource.for_issuer(issuer, client=http_client, clock=clock)
        else:
            keys = JwksCache.for_issuer(issuer, client=http_client, clock=clock)
        return cls(issuer, keys, clock=clock)

    async def verify(self, token: str) -> Principal:
        """Verify a compact JWT fully and return who it names.

        Raises:
            InvalidToken: with a private reason (see the module docstring).
            Unavailable: the issuer's keys could never be fetched.
        """
        parsed = parse_compact(token, max_bytes=self._max_bytes)
        return await self.verify_parsed(parsed, parsed.claims())

    async def verify_parsed(self, parsed: ParsedJws, claims: dict[str, Any]) -> Principal:
        """Like :meth:`verify` for a token already parsed (to read its ``iss``)."""
        key = await verify_signature(
            parsed, self.keys, self._algorithms, token_types=self._token_types
        )
        exp = self._check_claims(claims, self._clock())
        client_id = claims.get("client_id", claims.get("azp"))
        if client_id is not None and not isinstance(client_id, str):
            raise InvalidToken("bad_client_id")
        return Principal(
            subject=claims[self._subject_claim],
            credential=CredentialType.JWT,
            scopes=_scopes(claims, self.config.scope_claims),
            roles=_roles(claims, self.config.roles_claim),
            issuer=self.issuer,
            client_id=client_id,
            key_id=key.kid,
            expires_at=exp,
            claims=MappingProxyType(claims),
        )

    def _check_claims(self, claims: Mapping[str, Any], now: float) -> float:
        if claims.get("iss") != self.issuer:
            raise InvalidToken("bad_issuer")
        self._check_audience(claims.get("aud"))
        exp = _number(claims, "exp")
        if exp is None:
            raise InvalidToken("missing_exp")
        if now >= exp + self._leeway:
            raise InvalidToken("expired")
        nbf = _number(claims, "nbf")
        if nbf is not None and nbf > now + self._leeway:
            raise InvalidToken("not_yet_valid")
        self._check_iat(_number(claims, "iat"), now)
        sub = claims.get(self._subject_claim)
        if not isinstance(sub, str) or not sub:
            raise InvalidToken("missing_sub")
        jti = claims.get("jti")
        if jti is not None and not isinstance(jti, str):
            raise InvalidToken("malformed_claims")
        return exp

    def _check_audience(self, aud: Any) -> None:
        if aud is None:
            raise InvalidToken("missing_aud")
        values = [aud] if isinstance(aud, str) else aud
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidToken("malformed_claims")
        if self._audiences.isdisjoint(values):
            raise InvalidToken("bad_audience")

    def _check_iat(self, iat: float | None, now: float) -> None:
        max_age = self.config.max_token_age_seconds
        if iat is None:
            if max_age is not None:
                raise InvalidToken("missing_iat")
            return
        if iat > now + self._leeway:
            raise InvalidToken("iat_in_future")
        if max_age is not None and now - iat > max_age + self._leeway:
            raise InvalidToken("too_old")
