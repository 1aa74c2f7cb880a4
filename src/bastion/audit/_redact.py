"""Defence in depth: nothing that looks like a secret reaches the audit log.

Callers should never pass secrets; this pass catches the ones they do. Values of
secret-named keys are replaced; JWTs (RFC 7519 compact form), bastion API keys, HTTP
credentials (Basic/Bearer, RFC 7617 / RFC 6750) inside any string are masked; a
``path`` loses its query string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"

_SECRET_NAMES = (
    "authorization",
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "cookie",
    "private_key",
    "credentials",
)

_PATH_KEYS = frozenset({"path", "url", "uri", "target"})
_SCALARS = frozenset({int, float, bool, type(None)})
_SCHEME_HINTS = (b"basic", b"bearer", b"dpop", b"digest")
_TEXT_SCHEME_HINTS = tuple(h.decode() for h in _SCHEME_HINTS)
_CLEAN_MAX = 8192


def _secret_patterns(api_key_prefixes: Iterable[str]) -> re.Pattern[str]:
    prefixes = "|".join(re.escape(p) for p in sorted(set(api_key_prefixes)))
    parts = [
        # A JWS/JWE in compact form: two base64url JSON segments, then the rest.
        r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*",
        r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*",
        # HTTP credentials as sent in Authorization / Proxy-Authorization.
        # The credential must hold a capital, digit or base64 symbol, so prose such as
        # "basic credentials rejected" in a reason stays readable.
        r"(?i:\b(?:basic|bearer|dpop|digest)\s+)(?=[a-z._~-]*[A-Z0-9+/=])[A-Za-z0-9+/=._~-]{6,}",
    ]
    if prefixes:
        parts.append(rf"(?:{prefixes})[A-Za-z0-9_-]+")
    return re.compile("|".join(parts))


class Redactor:
    """Masks secrets in an event.

    :meth:`dumps_clean` is the hot path: an event with no secret-named key, no query
    string and nothing secret-looking in its serialised form (one regex scan of the
    line) is written as is; only the rare suspicious event is walked field by field.
    """

    def __init__(self, api_key_prefixes: Iterable[str] = ("bst_",)) -> None:
        self._pattern = _secret_patterns(api_key_prefixes)
        # JSON leaves the characters of these patterns unescaped, so the same
        # expression over the UTF-8 line finds what it would find in each string.
        self._bytes_pattern = re.compile(self._pattern.pattern.encode())
        self._secret_key: dict[str, bool] = {}
        self._hints = (b"eyJ", *(p.encode() for p in set(api_key_prefixes)))
        self._text_hints = tuple(h.decode() for h in self._hints)
        # A short id that needs no scan: no whitespace (so no HTTP credential) and none
        # of the hints a JWT or an API key starts with.
        hints = "|".join(re.escape(h) for h in self._text_hints)
        self.plain_id = re.compile(rf"(?!.*(?:{hints}))[A-Za-z0-9._-]{{1,64}}")
        self.known_clean: set[str] = set()  # see clean_value

    def suspicious_keys(self, event: Mapping[str, Any]) -> bool:
        """Whether ``event`` has a secret-named key, a query string or a nested value."""
        secret = self._secret_key
        for key, value in event.items():
            kind = type(value)
            if kind is str:
                if key in _PATH_KEYS and "?" in value:
                    return True
            elif kind not in _SCALARS:
                return True  # containers may hide secret-named keys: walk them
            known = secret.get(key)
            if known is None:
                known = not isinstance(key, str) or self._is_secret_name(key)
            if known:
                return True
        return False

    def suspicious_line(self, line: bytes) -> bool:
        """Whether serialised ``line`` contains anything secret-looking."""
        # Substring tests (~2 µs a line) are much cheaper than the pattern (a
        # case-insensitive regex scan costs ~12 µs); most lines have no hint at all.
        for hint in self._hints:
            if hint in line:
                return self._bytes_pattern.search(line) is not None
        lowered = line.lower()
        for word in _SCHEME_HINTS:
            if word in lowered:
                return self._bytes_pattern.search(line) is not None
        return False

    def clean_value(self, value: str) -> bool:
        """Whether string ``value`` holds nothing secret-looking and no query string.

        Answers for clean values are remembered (bounded): the same hosts, paths and
        subjects recur on every request. A value that fails is never remembered.
        """
        if value in self.known_clean:
            return True
        if "?" in value or self.looks_secret(value):
            return False
        if len(self.known_clean) >= _CLEAN_MAX:
            self.known_clean.clear()
        self.known_clean.add(value)
        return True

    def looks_secret(self, value: str) -> bool:
        """Whether ``value`` holds a JWT, an API key or HTTP credentials."""
        for hint in self._text_hints:
            if hint in value:
                return self._pattern.search(value) is not None
        lowered = value.lower()
        for word in _TEXT_SCHEME_HINTS:
            if word in lowered:
                return self._pattern.search(value) is not None
        return False

    def _is_secret_name(self, key: str) -> bool:
        known = self._secret_key.get(key)
        if known is None:
            norm = key.lower().replace("-", "_")
            known = any(name in norm for name in _SECRET_NAMES)
            if len(self._secret_key) < 4096:
                self._secret_key[key] = known
        return known

    def text(self, value: str) -> str:
        """``value`` with every secret-looking token masked."""
        if self._pattern.search(value) is None:
            return value
        return self._pattern.sub(REDACTED, value)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return self.mapping(value)
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.text(str(value))

    def mapping(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """A redacted copy of ``event``; keys are made strings."""
        out: dict[str, Any] = {}
        for key, value in event.items():
            name = key if isinstance(key, str) else str(key)
            if self._is_secret_name(name) and value is not None:
                out[name] = REDACTED
            elif name in _PATH_KEYS and isinstance(value, str):
                # Query strings are never logged: they carry tokens and personal data.
                out[name] = self.text(value.partition("?")[0])
            else:
                out[name] = self.value(value)
        return out
