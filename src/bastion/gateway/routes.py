"""Route matching and request-path normalisation.

Routes are tried in the order the config lists them; the first that matches wins. A
request no route matches is denied (default deny).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import unquote

from bastion.config import AuthMethod, RouteConfig
from bastion.errors import BadRequest
from bastion.gateway._headers import AmbiguousRequest

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|00)", re.IGNORECASE)
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


class InvalidPath(BadRequest):
    code = "invalid_path"
    title = "Invalid request path"


_NORMALIZED: dict[str, str] = {}
_NORMALIZED_MAX = 4096
_MATCHED_MAX = 4096


def normalize_path(raw: str) -> str:
    """:func:`_normalize_path`, remembering the answers for recent good paths."""
    cached = _NORMALIZED.get(raw)
    if cached is not None:
        return cached
    path = _normalize_path(raw)
    if len(_NORMALIZED) >= _NORMALIZED_MAX:
        _NORMALIZED.clear()  # cheap bound: an attacker's unique paths cannot grow it
    _NORMALIZED[raw] = path
    return path


def _normalize_path(raw: str) -> str:
    """Decode a request path for matching, refusing forms that confuse path matchers.

    Encoded slashes, backslashes and NULs, dot segments, control characters, malformed
    escapes (``%zz``) and escapes that are still escapes once decoded (``%2561`` → ``%61``,
    which an upstream that decodes twice reads as ``a``) are refused rather than resolved:
    a gateway that resolves ``/public/../admin`` one way while the upstream resolves it
    another is an authorization bypass (CWE-22, CWE-174, CWE-436).
    """
    if not raw.startswith("/"):
        raise InvalidPath("path_not_absolute")
    if _ENCODED_SEPARATOR.search(raw):
        raise InvalidPath("encoded_separator")
    if "%" in raw and _BAD_ESCAPE.search(raw):
        raise InvalidPath("bad_percent_encoding")
    try:
        path = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise InvalidPath("path_not_utf8") from None
    if "%" in path and _ESCAPE.search(path):
        raise InvalidPath("double_encoding")
    if _CONTROL.search(path) or "\\" in path:
        raise InvalidPath("path_control_char")
    for segment in path.split("/"):
        # Tomcat, Jetty and Spring drop ``;`` parameters from each segment before they
        # resolve dot segments: ``/public/..;/admin`` is ``/admin`` to them.
        if segment.partition(";")[0] in (".", ".."):
            raise InvalidPath("dot_segment")
    return path


_SLASHES = re.compile(r"/{2,}")


def loose_reading(path: str) -> str:
    """``path`` as the most forgiving upstream reads it: Unicode compatibility forms
    folded (NFKC: IIS's best fit, some Java servers), ``;`` parameters dropped from each
    segment (Tomcat, Jetty, Spring), repeated slashes merged (Apache, nginx's
    ``merge_slashes``, many routers) and case folded (Express, ASP.NET, IIS).

    Raises:
        AmbiguousRequest: the reading has dot segments or backslashes (from NFKC's
            fullwidth forms) the decoded path did not have.
    """
    if not path.isascii():
        path = unicodedata.normalize("NFKC", path)
    if ";" in path:
        path = "/".join(segment.partition(";")[0] for segment in path.split("/"))
    path = _SLASHES.sub("/", path).lower()
    if "\\" in path or any(s in (".", "..") for s in path.split("/")):
        raise AmbiguousRequest("path_reading_has_dot_segment")
    return path


@dataclass(frozen=True, slots=True)
class Route:
    """A route compiled for matching."""

    config: RouteConfig
    name: str
    host: str | None
    host_suffix: str | None
    prefix: str
    methods: frozenset[str] | None
    auth: tuple[AuthMethod, ...]
    scopes: frozenset[str]
    roles: frozenset[str]
    issuers: frozenset[str] | None
    limit_policy: str
    assurance: bool = False  # the route asks for an ``acr`` or a ``max_age``
    websocket: bool = False  # the route accepts WebSocket handshakes
    websocket_origins: frozenset[str] | None = None  # from these Origins only, if set
    loose_prefix: str = field(default="/", compare=False)  # the prefix's loose_reading

    @classmethod
    def compile(cls, config: RouteConfig) -> Route:
        host = config.host.lower() if config.host else None
        suffix = None
        if host and host.startswith("*."):
            suffix, host = host[1:], None
        methods = None
        if config.methods is not None:
            methods = frozenset(config.methods)
            if "GET" in methods:
                methods |= {"HEAD"}
        return cls(
            config=config,
            name=config.name,
            host=host,
            host_suffix=suffix,
            prefix=config.path_prefix,
            methods=methods,
            auth=tuple(config.auth),
            scopes=frozenset(config.scopes),
            roles=frozenset(config.roles),
            issuers=frozenset(config.issuers) if config.issuers is not None else None,
            limit_policy=f"route:{config.name}",
            assurance=config.acr is not None or config.max_age is not None,
            websocket=config.websocket,
            loose_prefix=loose_reading(config.path_prefix),
            websocket_origins=(
                frozenset(config.websocket_origins)
                if config.websocket_origins is not None
                else None
            ),
        )

    def matches_path(self, path: str, loose: bool = False) -> bool:
        """Whether the route takes ``path`` (a :func:`loose_reading` when ``loose``)."""
        prefix = self.loose_prefix if loose else self.prefix
        if prefix == "/" or path == prefix:
            return True
        if prefix.endswith("/"):
            return path.startswith(prefix)
        return path.startswith(prefix) and path[len(prefix)] == "/"

    def matches_host(self, host: str) -> bool:
        if self.host is not None:
            return host == self.host
        if self.host_suffix is not None:
            return host.endswith(self.host_suffix)
        return True

    def upstream_path(self, path: str) -> str:
        if not self.config.strip_prefix or self.prefix == "/":
            return path
        rest = path[len(self.prefix.rstrip("/")) :]
        return rest if rest.startswith("/") else "/" + rest


def bare_host(host: str) -> str:
    """Lower-case host without port (handles ``[::1]:8080``) or a final dot: DNS and
    nginx's ``server_name`` read ``api.example.com.`` as ``api.example.com``."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    if host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host.rstrip(".") if host.endswith(".") else host


class RouteTable:
    def __init__(self, routes: list[RouteConfig]) -> None:
        self.routes = tuple(Route.compile(r) for r in routes)
        self.by_name = {r.name: r for r in self.routes}
        # (route, a route matched all but the method, the path's readings disagree)
        self._matched: dict[tuple[str, str, str], tuple[Route | None, bool, bool]] = {}

    def match(self, method: str, host: str, path: str) -> tuple[Route | None, bool]:
        """The first route for (method, host, path), and whether a route matched all but
        method; recent answers are remembered (bounded, like :func:`normalize_path`).

        Raises:
            AmbiguousRequest: the path's :func:`loose_reading` takes another route (an
                upstream that reads paths loosely would serve what this route guards).
        """
        key = (method, host, path)
        found = self._matched.get(key)
        if found is None:
            try:
                found = (*self._match(method, host, path), False)
            except AmbiguousRequest:
                found = (None, False, True)
            if len(self._matched) >= _MATCHED_MAX:
                self._matched.clear()
            self._matched[key] = found
        route, wrong_method, ambiguous = found
        if ambiguous:
            raise AmbiguousRequest("path_readings_differ")
        return route, wrong_method

    def _match(self, method: str, host: str, path: str) -> tuple[Route | None, bool]:
        host = bare_host(host)
        found = self._first(method, host, path, loose=False)
        # Compared even when the path reads the same loosely: a prefix may not (``/Admin``).
        if self._first(method, host, loose_reading(path), loose=True)[0] is not found[0]:
            raise AmbiguousRequest("path_readings_differ")
        return found

    def _first(self, method: str, host: str, path: str, loose: bool) -> tuple[Route | None, bool]:
        method_mismatch = False
        for route in self.routes:
            if route.matches_path(path, loose) and route.matches_host(host):
                if route.methods is None or method in route.methods:
                    return route, False
                method_mismatch = True
        return None, method_mismatch
