"""Mint compact JWTs for tests and demos (RFC 7515 §7.1), with any header you ask for.

Unlike a production signer this applies no policy at all: it will happily put ``crit``,
``jwk`` or an unknown ``typ`` in the header, because tests need exactly such tokens.
Never use it to issue real tokens; use :class:`bastion.tokens.keys.AssertionSigner`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from joserfc.jwk import Key, import_key
from joserfc.jws import JWSRegistry

from bastion.tokens._compact import b64url_encode


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=False).encode()


def mint_jwt(
    private_jwk: Mapping[str, Any] | Key,
    claims: Mapping[str, Any],
    alg: str = "ES256",
    kid: str | None = None,
    headers: Mapping[str, Any] | None = None,
) -> str:
    """Sign ``claims`` into a compact JWT.

    Args:
        private_jwk: the signing key as a private JWK (or an ``oct`` JWK for HS256), or a
            joserfc key.
        claims: the JWT claims set.
        alg: a JWS algorithm joserfc implements (``ES256``, ``RS256``, ``PS256``,
            ``EdDSA``, ``HS256`` ...).
        kid: put in the header when given.
        headers: extra header members; they override ``alg``/``kid``/``typ``.
    """
    key = private_jwk if isinstance(private_jwk, Key) else import_key(dict(private_jwk))
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    header.update(headers or {})
    signing_input = f"{b64url_encode(_json(header))}.{b64url_encode(_json(claims))}"
    signature = JWSRegistry.algorithms[alg].sign(signing_input.encode("ascii"), key)
    return f"{signing_input}.{b64url_encode(signature)}"
