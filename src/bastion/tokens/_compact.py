"""Strict parsing of the JWS Compact Serialization (RFC 7515 §7.1) carrying a JWT.

joserfc's own parser is lenient where an authentication gateway must not be: it pads and
decodes base64url loosely and accepts duplicate JSON members. This module decides what a
well-formed token is *before* any key or algorithm is looked at; every failure is an
:class:`~bastion.errors.InvalidToken` with a private reason.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from bastion.errors import InvalidToken

MAX_TOKEN_BYTES = 8 * 1024
"""Tokens longer than this are refused before any decoding (RFC 8725 §3.1 spirit)."""

# RFC 7515 §2: base64url without padding; RFC 4648 §5 alphabet only.
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_decode(segment: str) -> bytes:
    """Decode unpadded base64url strictly: alphabet, length and canonical trailing bits.

    Raises:
        ValueError: on padding, foreign characters, whitespace or a non-canonical encoding.
    """
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise ValueError("not base64url")
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    # Reject non-zero unused bits ("AB" and "AA" must not both decode to b"\0").
    if b64url_encode(raw) != segment:
        raise ValueError("non-canonical base64url")
    return raw


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # RFC 7515 §5.2 / RFC 7519 §4: reject rather than pick one of two values.
            raise ValueError("duplicate member")
        result[key] = value
    return result


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object from UTF-8 bytes; no duplicate members, no NaN/Infinity.

    Raises:
        ValueError: when ``raw`` is not exactly one such object.
    """
    text = raw.decode("utf-8")  # UnicodeDecodeError is a ValueError
    value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def is_number(value: object) -> bool:
    """A JSON number usable as a NumericDate (RFC 7519 §2): not bool, finite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and abs(value) < 1e15


@dataclass(frozen=True, slots=True)
class ParsedJws:
    """A compact JWS whose syntax is valid; nothing about it is verified yet."""

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes

    def claims(self) -> dict[str, Any]:
        """The payload as a JWT claims set (RFC 7519 §7.2 step 10)."""
        try:
            return json_object(self.payload)
        except (ValueError, RecursionError):
            raise InvalidToken("malformed_claims") from None


def parse_compact(token: str, *, max_bytes: int = MAX_TOKEN_BYTES) -> ParsedJws:
    """Split and decode a compact JWS: exactly three parts, strict base64url, JSON header.

    Raises:
        InvalidToken: ``too_large``, ``malformed``, ``malformed_header``, ``bad_alg``.
    """
    if len(token) > max_bytes:
        raise InvalidToken("too_large")
    if not token.isascii():
        raise InvalidToken("malformed")
    parts = token.split(".")
    if len(parts) != 3:
        # Five parts is a JWE: bastion accepts no encrypted tokens.
        raise InvalidToken("malformed")
    header_b64, payload_b64, signature_b64 = parts
    # An empty signature is valid syntax (an Unsecured JWS); the alg allow-list and the
    # signature check refuse it, with a reason that names the attack.
    if not header_b64:
        raise InvalidToken("malformed")
    try:
        header = json_object(b64url_decode(header_b64))
        payload = b64url_decode(payload_b64)
        signature = b64url_decode(signature_b64)
    except (ValueError, RecursionError):
        raise InvalidToken("malformed") from None
    if not isinstance(header.get("alg"), str):
        raise InvalidToken("bad_alg")
    return ParsedJws(
        header=header,
        payload=payload,
        signing_input=f"{header_b64}.{payload_b64}".encode("ascii"),
        signature=signature,
    )
