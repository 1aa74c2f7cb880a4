"""Which JWKs bastion verifies with, and for which algorithms."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bastion.errors import InvalidToken
from bastion.tokens import JwtVerifier, KeyRejected, StaticKeySource, import_verification_key
from bastion.tokens._compact import b64url_encode
from tests.tokens._helpers import (
    EC_KEY,
    EC_KID,
    ED_KEY,
    RSA_KEY,
    FakeClock,
    claims,
    es256,
    issuer,
    pub,
)


def ec(**changes: Any) -> dict[str, Any]:
    jwk = pub(EC_KEY, EC_KID, "ES256")
    jwk.update(changes)
    return {k: v for k, v in jwk.items() if v is not None}


@pytest.mark.parametrize(
    ("jwk", "reason"),
    [
        ({"kty": "XYZ"}, "unsupported_kty"),
        ({}, "unsupported_kty"),
        ("not a dict", "not_an_object"),
        (ec(kid=5), "bad_kid"),
        (ec(kid=""), "bad_kid"),
        (ec(kid="k" * 300), "bad_kid"),
        (ec(use="enc"), "wrong_use"),
        (ec(key_ops=["encrypt"]), "wrong_key_ops"),
        (ec(key_ops="verify"), "wrong_key_ops"),
        (ec(alg="ES384"), "alg_not_supported"),
        (ec(alg="HS256"), "alg_not_supported"),
        (ec(crv="P-384"), "unsupported_curve"),
        (ec(x="AAAA"), "invalid_key"),
        ({"kty": "RSA", "n": 5, "e": "AQAB"}, "invalid_key"),
        ({"kty": "RSA", "n": "a+b", "e": "AQAB"}, "invalid_key"),
        (pub(RSA_KEY, "r", "RS256") | {"e": "!!"}, "invalid_key"),
        (dict(EC_KEY.as_dict(private=True)), "private_key_material"),
        ({"kty": "oct", "k": "A" * 43}, "symmetric_key"),
        (dict(ED_KEY.as_dict(private=False), crv="Ed448"), "unsupported_curve"),
    ],
)
def test_rejected_keys(jwk: Any, reason: str) -> None:
    with pytest.raises(KeyRejected, match=reason):
        import_verification_key(jwk)


def test_weak_keys() -> None:
    # A weak key on purpose: it must be refused.
    numbers = rsa.generate_private_key(65537, 1024).public_key().public_numbers()  # noqa: S505
    small = {"kty": "RSA", "n": b64url_encode(numbers.n.to_bytes(128, "big")), "e": "AQAB"}
    with pytest.raises(KeyRejected, match="weak_key"):
        import_verification_key(small)
    with pytest.raises(KeyRejected, match="weak_key"):
        import_verification_key({"kty": "oct", "k": "A" * 40}, allow_symmetric=True)


def test_key_without_alg_gets_its_type_algorithms() -> None:
    jwk = {k: v for k, v in pub(RSA_KEY, "r", "RS256").items() if k != "alg"}
    rsa = import_verification_key(jwk)
    assert rsa.algorithms == {"RS256", "PS256"}
    assert repr(rsa) == "VerificationKey(kid='r', algorithms=['PS256', 'RS256'])"


def test_static_config_with_unusable_key_is_an_error() -> None:
    with pytest.raises(KeyRejected, match="key #1: wrong_use"):
        StaticKeySource.from_jwks([ec(), ec(use="enc")])


async def test_non_string_kid_header() -> None:
    v = JwtVerifier.from_config(issuer(), clock=FakeClock())
    with pytest.raises(InvalidToken) as info:
        await v.verify(es256(kid=7))
    assert info.value.reason == "malformed_header"


async def test_no_scope_claim_means_no_scopes() -> None:
    v = JwtVerifier.from_config(issuer(), clock=FakeClock())
    principal = await v.verify(es256(claims(scope=None, roles=None)))
    assert principal.scopes == frozenset()
    assert principal.roles == frozenset()
