"""Verification keys from JWKs (RFC 7517), each bound to the algorithms it may verify.

A key's type decides its algorithms (RFC 8725 §3.1, §2.1): an RSA or EC public key can
never become an HMAC secret, whatever the token's header says. Keys meant for encryption,
keys carrying private material and keys too weak are refused when they are imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OctKey, OKPKey, RSAKey

from bastion.config import Algorithm
from bastion.tokens._compact import b64url_decode, b64url_encode

MIN_RSA_BITS = 2048
MIN_HMAC_BYTES = 32

# Which algorithms each key type can verify; the only place kty meets alg.
_ALGS_BY_KTY: dict[str, frozenset[str]] = {
    "RSA": frozenset({Algorithm.RS256.value, Algorithm.PS256.value}),
    "EC": frozenset({Algorithm.ES256.value}),
    "OKP": frozenset({Algorithm.EDDSA.value}),
    "oct": frozenset({Algorithm.HS256.value}),
}
_CURVES = {"EC": "P-256", "OKP": "Ed25519"}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
_IMPORTERS: dict[str, type[RSAKey] | type[ECKey] | type[OKPKey] | type[OctKey]] = {
    "RSA": RSAKey,
    "EC": ECKey,
    "OKP": OKPKey,
    "oct": OctKey,
}


class KeyRejected(ValueError):
    """A JWK bastion will not verify with; the message is a short reason code."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key (or an explicitly configured HMAC secret) and what it may verify."""

    kid: str | None
    algorithms: frozenset[str]
    key: Key

    def __repr__(self) -> str:  # never show key material, even for an HMAC secret
        return f"VerificationKey(kid={self.kid!r}, algorithms={sorted(self.algorithms)!r})"


def _check_members(jwk: Mapping[str, Any], *, allow_symmetric: bool) -> str:
    kty = jwk.get("kty")
    if not isinstance(kty, str) or kty not in _ALGS_BY_KTY:
        raise KeyRejected("unsupported_kty")
    if kty == "oct" and not allow_symmetric:
        raise KeyRejected("symmetric_key")  # a JWKS never carries shared secrets
    if kty != "oct" and _PRIVATE_MEMBERS & jwk.keys():
        raise KeyRejected("private_key_material")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise KeyRejected("wrong_use")
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise KeyRejected("wrong_key_ops")
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 256):
        raise KeyRejected("bad_kid")
    return kty


def import_verification_key(
    jwk: Mapping[str, Any], *, allow_symmetric: bool = False
) -> VerificationKey:
    """Import one JWK for signature verification.

    Args:
        jwk: the JWK as a JSON object.
        allow_symmetric: accept ``kty: oct`` (only for a configured ``hs256_secret``).

    Raises:
        KeyRejected: with a reason code when the key is unusable.
    """
    if not isinstance(jwk, Mapping):
        raise KeyRejected("not_an_object")
    kty = _check_members(jwk, allow_symmetric=allow_symmetric)
    algorithms = _ALGS_BY_KTY[kty]
    alg = jwk.get("alg")
    if alg is not None:
        # RFC 7517 §4.4: a key that names its algorithm is used with that one only.
        algorithms = algorithms & {alg}
        if not algorithms:
            raise KeyRejected("alg_not_supported")
    if kty in _CURVES and jwk.get("crv") != _CURVES[kty]:
        raise KeyRejected("unsupported_curve")
    if kty == "RSA" and _modulus_bits(jwk.get("n")) < MIN_RSA_BITS:
        # Checked before import: joserfc only warns, and a warning is not a refusal.
        raise KeyRejected("weak_key")
    try:
        key = _IMPORTERS[kty].import_key(dict(jwk))
    except (JoseError, ValueError, TypeError, KeyError):
        raise KeyRejected("invalid_key") from None
    if kty == "oct" and len(key.raw_value) < MIN_HMAC_BYTES:  # type: ignore[arg-type]
        raise KeyRejected("weak_key")
    kid = jwk.get("kid")
    return VerificationKey(kid=kid, algorithms=algorithms, key=key)


def _modulus_bits(n: object) -> int:
    if not isinstance(n, str):
        raise KeyRejected("invalid_key")
    try:
        return int.from_bytes(b64url_decode(n), "big").bit_length()
    except ValueError:
        raise KeyRejected("invalid_key") from None


@dataclass(frozen=True, slots=True)
class KeyIndex:
    """An immutable set of verification keys, indexed by ``kid``.

    ``any_kid`` is for a single configured secret: the token's ``kid`` (if any) is not
    used to select it.
    """

    keys: tuple[VerificationKey, ...]
    any_kid: bool = False

    @classmethod
    def of(cls, keys: Iterable[VerificationKey], *, any_kid: bool = False) -> KeyIndex:
        return cls(keys=tuple(keys), any_kid=any_kid)

    def has_kid(self, kid: str) -> bool:
        return self.any_kid or any(k.kid == kid for k in self.keys)

    def candidates(self, kid: str | None) -> tuple[VerificationKey, ...]:
        if kid is None or self.any_kid:
            return self.keys
        return tuple(k for k in self.keys if k.kid == kid)

    def __len__(self) -> int:
        return len(self.keys)


class KeySource(Protocol):
    """Where an issuer's verification keys come from (static config or a JWKS URL)."""

    async def key_index(self, kid: str | None) -> KeyIndex:
        """The current keys; a source that can refresh may do so for an unknown ``kid``."""
        ...


class StaticKeySource:
    """Keys fixed in the configuration: ``keys`` (public JWKs) or ``hs256_secret``."""

    def __init__(self, index: KeyIndex) -> None:
        self._index = index

    @classmethod
    def from_jwks(cls, jwks: Iterable[Mapping[str, Any]]) -> StaticKeySource:
        """Public JWKs from config; a key bastion cannot use is a configuration error.

        Raises:
            KeyRejected: naming the first unusable key.
        """
        keys = []
        for position, jwk in enumerate(jwks):
            try:
                keys.append(import_verification_key(jwk))
            except KeyRejected as exc:
                raise KeyRejected(f"key #{position}: {exc}") from None
        return cls(KeyIndex.of(keys))

    @classmethod
    def from_secret(cls, secret: bytes) -> StaticKeySource:
        jwk = {"kty": "oct", "k": b64url_encode(secret), "alg": Algorithm.HS256.value}
        key = import_verification_key(jwk, allow_symmetric=True)
        return cls(KeyIndex.of([key], any_kid=True))

    async def key_index(self, kid: str | None) -> KeyIndex:
        return self._index
