"""The API key format: generated, parsed and checked offline.

One line, 66 characters with the default prefix::

    bst_<key_id>_<secret><checksum>
    bst_k7q2m4x9a3bd_3VqHj...(43 chars)...Zk0w1Xy9a

* ``bst_`` — ``api_keys.prefix`` from the config, so scanners can spot leaked keys;
* ``key_id`` — 12 lowercase base32 characters (60 random bits), public: shown in listings
  and audit logs, and the database lookup key;
* ``secret`` — 32 random bytes in base62, always 43 characters;
* ``checksum`` — CRC-32 (zlib) of every character before it, base62, 6 characters: like
  GitHub's token format, a leaked-key scanner can tell a real key from a typo offline.
"""

from __future__ import annotations

import re
import secrets
import zlib
from base64 import b32encode
from dataclasses import dataclass, field

from bastion.errors import InvalidToken

KEY_ID_LEN = 12
SECRET_LEN = 43
CHECKSUM_LEN = 6
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _b62(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        out.append(_B62[digit])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _b62(zlib.crc32(body.encode()), CHECKSUM_LEN)


@dataclass(frozen=True, slots=True)
class ParsedKey:
    key_id: str
    token: str = field(repr=False)


class KeyFormat:
    """Generate and parse keys with one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.length = len(prefix) + KEY_ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN
        self._re = re.compile(
            rf"{re.escape(prefix)}([a-z2-7]{{{KEY_ID_LEN}}})_"
            rf"[0-9A-Za-z]{{{SECRET_LEN}}}([0-9A-Za-z]{{{CHECKSUM_LEN}}})"
        )

    def generate(self) -> str:
        key_id = b32encode(secrets.token_bytes(8)).decode().lower()[:KEY_ID_LEN]
        secret = _b62(int.from_bytes(secrets.token_bytes(32)), SECRET_LEN)
        body = f"{self.prefix}{key_id}_{secret}"
        return body + _checksum(body)

    def parse(self, token: str) -> ParsedKey:
        """Check syntax and checksum (no I/O). Raises InvalidToken."""
        if len(token) != self.length:
            raise InvalidToken("api_key_malformed")
        match = self._re.fullmatch(token)
        if match is None:
            raise InvalidToken("api_key_malformed")
        if match.group(2) != _checksum(token[:-CHECKSUM_LEN]):
            raise InvalidToken("api_key_bad_checksum")
        return ParsedKey(key_id=match.group(1), token=token)

    def key_id_of(self, token: str) -> str | None:
        """The key id a well-formed key claims, without checking it."""
        match = self._re.fullmatch(token) if len(token) == self.length else None
        return None if match is None else match.group(1)
