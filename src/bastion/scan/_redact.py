"""Keep secrets out of evidence: tokens, keys, passwords and cookies are masked."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[REDACTED]"

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-csrf-token",
        "x-access-token",
    }
)
# Random per handshake and derived from nothing secret: shown as sent (a base64 value
# can hold "sid" or "otp" and would read as a field to mask).
_PLAIN_HEADERS = frozenset({"sec-websocket-key", "sec-websocket-accept", "sec-websocket-version"})
_FIELD_NAME = (
    r"[A-Za-z0-9_.-]*(?:pass(?:word|wd)?|secret|token|api[_-]?key|apikey|session|sid|otp|"
    r"hash|private[_-]?key|salt|cookie)[A-Za-z0-9_.-]*"
)
# "password": "x"  /  password=x  /  password: x
_JSON_FIELD = re.compile(rf'("{_FIELD_NAME}"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}}\s\]]+)', re.I)
_QUERY_FIELD = re.compile(rf"(?<![A-Za-z0-9_])({_FIELD_NAME}=)([^&\s;\"']+)", re.I)


class Redactor:
    """Masks known secrets (the identities' credentials) and anything shaped like one."""

    def __init__(self, secrets: Iterable[str] = (), headers: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._headers = set(_SECRET_HEADERS)
        self.add(*secrets)
        self._headers.update(h.lower() for h in headers)

    def add(self, *secrets: str) -> None:
        """Register more secret values (short ones would mask ordinary words: skipped)."""
        self._secrets.update(s for s in secrets if s and len(s) >= 4)

    def add_header(self, name: str) -> None:
        self._headers.add(name.lower())

    def header(self, name: str, value: str) -> str:
        if name.lower() in _PLAIN_HEADERS:
            return value
        if name.lower() not in self._headers:
            return self.text(value)
        if name.lower() == "authorization" and " " in value:
            scheme = value.split(" ", 1)[0]
            return f"{scheme} {MASK}"
        if name.lower() in {"cookie", "set-cookie"}:
            return _mask_cookie(value, all_pairs=name.lower() == "cookie")
        return MASK

    def text(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        text = _JWT.sub(lambda m: m.group(0)[:10] + "…" + MASK, text)
        text = _JSON_FIELD.sub(_keep_name, text)
        return _QUERY_FIELD.sub(lambda m: m.group(1) + MASK, text)


def _keep_name(match: re.Match[str]) -> str:
    value = match.group(2)
    if value in {"true", "false", "null"} or value.lstrip("-").isdigit():
        return match.group(0)
    return f'{match.group(1)}"{MASK}"'


def _mask_cookie(value: str, *, all_pairs: bool) -> str:
    # A Cookie header is all name=value pairs; in Set-Cookie only the first pair is the
    # cookie and the rest are attributes (Path, Secure, ...) worth keeping as evidence.
    parts = []
    for i, part in enumerate(value.split(";")):
        name, sep, _ = part.partition("=")
        parts.append(f"{name}={MASK}" if sep and (all_pairs or i == 0) else part)
    return ";".join(parts)
