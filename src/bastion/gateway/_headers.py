"""Request headers that carry trust: who may set them, and what bastion does when a
client sets them anyway (docs/security.md, "Who may set which header").

A header is compared by its *key*: lower-case, ``_`` read as ``-``. CGI, WSGI, PHP and
Rack turn both into ``HTTP_X_BASTION_ROLES``, and some join the two values, so a client's
``X_Bastion_Roles: admin`` would otherwise pass a strip written for ``X-Bastion-Roles``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bastion.errors import BadRequest

# How a proxy in front tells bastion's forward-auth endpoint what it holds (one pair per
# set-up: forwarded.original_request). A client's copy of the other pair is refused.
FORWARDED_PAIR = ("x-forwarded-method", "x-forwarded-uri")
ORIGINAL_PAIR = ("x-original-method", "x-original-uri")

# Headers with which frameworks let a client change the method or the path the app
# routes on (Rails, Laravel, Symfony, ASP.NET, Express's method-override, IIS URL
# Rewrite). bastion decides on every reading they allow (see routes.Readings).
METHOD_OVERRIDES = ("x-http-method-override", "x-http-method", "x-method-override")
URL_OVERRIDES = ("x-original-url", "x-rewrite-url")

# Headers an upstream may believe to learn the client's address or the scheme, host and
# prefix the client used: only a proxy may set them. The proxy front door removes
# every client copy and sets X-Forwarded-For/-Proto/-Host and X-Real-IP itself.
ADDRESS_HEADERS = frozenset(
    {
        "x-forwarded-for",
        "x-real-ip",
        "forwarded",
        "x-forwarded",
        "forwarded-for",
        "true-client-ip",
        "cf-connecting-ip",
        "fastly-client-ip",
        "x-client-ip",
        "x-cluster-client-ip",
        "x-originating-ip",
        "x-remote-ip",
        "x-remote-addr",
        "client-ip",
    }
)
FORWARDED_FAMILY = frozenset(
    {
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-server",
        "x-forwarded-ssl",
        "x-forwarded-scheme",
        "x-forwarded-path",
        "x-url-scheme",
        "x-scheme",
        "front-end-https",
        "x-host",
    }
)
PROXY_ONLY = (
    ADDRESS_HEADERS
    | FORWARDED_FAMILY
    | frozenset(FORWARDED_PAIR)
    | frozenset(ORIGINAL_PAIR)
    | frozenset(URL_OVERRIDES)
)


class AmbiguousRequest(BadRequest):
    """A request that reads one way to bastion and may read another to the upstream."""

    code = "ambiguous_request"
    title = "Ambiguous request"


def header_key(name: str) -> str:
    """The name as CGI-style upstreams read it: lower-case, ``_`` as ``-``."""
    return name.lower().replace("_", "-")


class Sensitive:
    """The header names whose underscore spellings bastion refuses (in every front door):
    identity headers, credentials, and every header of this module."""

    def __init__(self, identity_prefix: str, extra: Iterable[str]) -> None:
        self.prefix = identity_prefix.lower()
        self.names = PROXY_ONLY | frozenset(METHOD_OVERRIDES) | {n.lower() for n in extra}

    def is_sensitive(self, key: str) -> bool:
        return key.startswith(self.prefix) or key in self.names

    def check(self, headers: Mapping[str, str]) -> None:
        """Raise for a header spelled with ``_`` that a CGI-style upstream would read as a
        sensitive one: no client sends one by mistake, and nginx drops them (its default
        ``underscores_in_headers off``) while Caddy, Traefik and Envoy pass them on."""
        for name in headers:
            if "_" in name and self.is_sensitive(name.replace("_", "-")):
                raise AmbiguousRequest("underscore_header")
