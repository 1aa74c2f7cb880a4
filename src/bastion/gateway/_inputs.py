"""The input guard of the decision core (DESIGN.md's flow: route match → input guard):
what a request must look like before anything is decided on it.

Each check refuses a request that one reader (bastion) could take one way and another
(the upstream, a proxy in between) another way: a path or method that override headers
change, header names that CGI-style upstreams fold together, two body framings, a
credential in the URL. Refusing is the only answer that holds whatever the upstream is.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from bastion.config import AuthMethod, Config
from bastion.credentials._query import credential_in_query
from bastion.errors import (
    BadRequest,
    CredentialRefused,
    HeadersTooLarge,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
)
from bastion.gateway._headers import METHOD_OVERRIDES, URL_OVERRIDES, AmbiguousRequest, Sensitive
from bastion.gateway.routes import Route, RouteTable, normalize_path
from bastion.model import RequestView

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class InputGuard:
    """Route matching with every reading of the request, and the checks of its shape."""

    def __init__(self, config: Config, routes: RouteTable) -> None:
        self.routes = routes
        self._limits = config.limits
        self._key_prefix = config.api_keys.prefix
        self._prefix = self._key_prefix.lower()
        self._sensitive = Sensitive(
            config.identity.header_prefix,
            (
                config.identity.assertion_header,
                config.api_keys.header,
                "x-request-id",
                "content-length",
                "transfer-encoding",
                "proxy-authorization",
                "sec-websocket-protocol",
            ),
        )

    def match(self, request: RequestView) -> tuple[str, Route]:
        """Normalise the path and find the route; raises a BastionError on failure."""
        if request.method not in HTTP_METHODS:
            # TRACE echoes credentials back (cross-site tracing), CONNECT tunnels:
            # refused on every route, whatever its ``methods``.
            raise MethodNotAllowed("method_not_allowed")
        path = normalize_path(request.path)
        route, wrong_method = self.routes.match(request.method, request.host, path)
        if route is None:
            if wrong_method:
                raise MethodNotAllowed("method_not_allowed")
            raise NotFound("no_route")
        headers = request.headers
        if (
            "x-http-method-override" in headers
            or "x-http-method" in headers
            or "x-method-override" in headers
            or "x-original-url" in headers
            or "x-rewrite-url" in headers
        ):
            self._check_overrides(request, path, route)
        return path, route

    def _check_overrides(self, request: RequestView, path: str, route: Route) -> None:
        """Every method and path that override headers let an upstream act on must take
        the same ``route``: Rails, Laravel and Express's method-override read the method
        from a header, Symfony and IIS the path; bastion cannot know which one it guards."""
        methods = {request.method}
        for name in METHOD_OVERRIDES:
            for value in request.headers.get(name, "").split(","):
                if value.strip():
                    methods.add(value.strip().upper())
        paths = {path}
        for name in URL_OVERRIDES:
            value = request.headers.get(name, "").strip()
            if value:
                # A path (Symfony, IIS) or an absolute URL (Authelia's X-Original-URL).
                target = value if value.startswith("/") else urlsplit(value).path
                try:
                    paths.add(normalize_path(target.partition("?")[0]))
                except BadRequest:
                    raise AmbiguousRequest("url_override_invalid") from None
        for method in methods:
            if method not in HTTP_METHODS:
                raise AmbiguousRequest("method_override_invalid")
            for other in paths:
                if self.routes.match(method, request.host, other)[0] is not route:
                    raise AmbiguousRequest("override_takes_another_route")

    def check(self, request: RequestView, route: Route) -> None:
        """Sizes, framing, header names and the query string of a matched request."""
        limits = self._limits
        headers = request.headers
        size = sum(map(len, headers)) + sum(map(len, headers.values())) + 4 * len(headers)
        if size > limits.max_header_bytes:
            raise HeadersTooLarge("headers_too_large")
        if "_" in "".join(headers):  # one C-level scan: the common request has none
            self._sensitive.check(headers)
        if len(headers.get("authorization", "")) > limits.max_authorization_bytes:
            raise HeadersTooLarge("authorization_too_large")
        if "transfer-encoding" in headers or "content-length" in headers:
            self._framing(headers, limits.max_body_bytes)
        query = request.query
        if query:
            # credential_in_query's own first look, inlined: most queries stop here.
            lowered = query.lower()
            if "%" in query or "key" in lowered or "token" in lowered or self._prefix in lowered:
                self._query(query, route)

    @staticmethod
    def _framing(headers: Mapping[str, str], max_body: int) -> None:
        coding = headers.get("transfer-encoding")
        if coding is not None and coding.strip().lower() != "chunked":
            # gzip/compress/deflate or a repeated chunked: the server dechunked the body
            # but the rest would reach the upstream as if plain (RFC 9112 §6.1).
            raise BadRequest("unsupported_transfer_coding")
        length = headers.get("content-length")
        if length is not None:
            if coding is not None:
                # Two framings: whichever one the next hop believes, the other can smuggle
                # a request past this one (RFC 9112 §6.1: a server may refuse; we do).
                raise BadRequest("conflicting_framing")
            if not length.isdigit():
                raise BadRequest("bad_content_length")
            if int(length) > max_body:
                raise PayloadTooLarge("body_too_large")

    def _query(self, query: str, route: Route) -> None:
        """Whichever method the route then picks (an API key in a header, say), a
        credential in the URL is refused: it would reach the upstream's logs."""
        generic = AuthMethod.API_KEY in route.auth
        name = credential_in_query(query, self._key_prefix, generic=generic)
        if name is not None:
            raise CredentialRefused(
                "token_in_query" if name == "access_token" else "api_key_in_query",
                detail="Credentials in URLs leak into logs and are refused; send them in a header.",
            )
