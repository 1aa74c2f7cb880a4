"""Credentials in URLs: refused, whichever method a route authenticates with.

URLs end up in access logs, proxies' caches, browser history and ``Referer`` headers
(RFC 6750 §2.3 and §5.3; OWASP ASVS 3.1.1), and bastion forwards the query string to
the upstream unchanged, so a credential there would reach its logs too.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

_SEPARATORS = re.compile(r"[&;]")  # some upstream frameworks split on ";" as well
# Names that always carry a credential (RFC 6750's access_token, the usual API-key names).
ALWAYS = frozenset({"access_token", "api_key", "apikey", "api-key"})
# Names that do on a route taking API keys, and are ordinary elsewhere (a reset link's token).
GENERIC = frozenset({"key", "token"})


def credential_in_query(query: str, key_prefix: str, *, generic: bool) -> str | None:
    """The name of a query parameter that carries a credential: one named like one
    (any case, percent-encoded or not; :data:`GENERIC` names only when ``generic``), or
    whose value is an API key of this deployment (starts with ``key_prefix``)."""
    if not query:
        return None
    lowered = query.lower()
    prefix = key_prefix.lower()
    # The common query has nothing to parse (a chain, not any(): this is the hot path).
    if (
        "%" not in query
        and "key" not in lowered
        and "token" not in lowered
        and prefix not in lowered
    ):
        return None
    for field in _SEPARATORS.split(query):
        raw_name, _, raw_value = field.partition("=")
        name = unquote_plus(raw_name, errors="replace").strip().lower()
        value = unquote_plus(raw_value, errors="replace").strip().lower()
        if name in ALWAYS or (generic and name in GENERIC) or value.startswith(prefix):
            return name
    return None
