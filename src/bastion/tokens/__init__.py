"""Tokens: JWT verification, issuer key sets, the verified-token cache, own signing keys."""

from __future__ import annotations

from bastion.tokens._keyset import (
    KeyIndex,
    KeyRejected,
    KeySource,
    StaticKeySource,
    VerificationKey,
    import_verification_key,
)
from bastion.tokens.cache import InMemoryRevocations, RevocationHook, VerifiedTokenCache
from bastion.tokens.jwks import JwksCache
from bastion.tokens.mint import mint_jwt
from bastion.tokens.verify import JwtVerifier

__all__ = [
    "InMemoryRevocations",
    "JwksCache",
    "JwtVerifier",
    "KeyIndex",
    "KeyRejected",
    "KeySource",
    "RevocationHook",
    "StaticKeySource",
    "VerificationKey",
    "VerifiedTokenCache",
    "import_verification_key",
    "mint_jwt",
]
