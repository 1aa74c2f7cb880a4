"""Recovery codes: the way back in when the authenticator app is lost.

Ten codes of 12 characters from a 32-letter alphabet (60 bits each) are shown once; only
their HMAC-SHA256 under a keyring-derived key is stored (they are high-entropy secrets, so
a password hash would only cost time — DESIGN.md). Each works once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

COUNT = 10
_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no l, o, 0, 1: easy to read back
_GROUPS = 3
_GROUP_LEN = 4


def new_codes(count: int = COUNT) -> list[str]:
    """``count`` fresh codes, formatted ``xxxx-xxxx-xxxx``."""
    return [
        "-".join(
            "".join(secrets.choice(_ALPHABET) for _ in range(_GROUP_LEN)) for _ in range(_GROUPS)
        )
        for _ in range(count)
    ]


def normalize(code: str) -> str:
    """What the user typed, without spaces or dashes, lower case."""
    return "".join(ch for ch in code.lower() if ch not in " -\t")


def digest(key: bytes, code: str) -> str:
    """The stored form of a code: HMAC-SHA256 under ``key`` of its normalised text."""
    return hmac.new(key, normalize(code).encode(), hashlib.sha256).hexdigest()


def looks_like_code(code: str) -> bool:
    text = normalize(code)
    return len(text) == _GROUPS * _GROUP_LEN and all(ch in _ALPHABET for ch in text)
