"""What the decision core checks of a WebSocket handshake, whichever front door asks."""

from __future__ import annotations

from collections.abc import Mapping

from bastion.errors import Forbidden
from bastion.gateway.routes import Route
from bastion.model import RequestView


def wants_websocket(headers: Mapping[str, str]) -> bool:
    """Whether a request asks to become a WebSocket (RFC 6455 §4.1: ``Upgrade``
    carries the ``websocket`` token, case-insensitively)."""
    upgrade = headers.get("upgrade")
    return upgrade is not None and "websocket" in (t.strip().lower() for t in upgrade.split(","))


def same_host(origin: str, host: str) -> bool:
    """Whether a browser's ``Origin`` names the host (and port) the request is addressed
    to; ``null`` and anything unparsable do not."""
    scheme, sep, rest = origin.partition("://")
    if not sep or not scheme or not rest or "/" in rest or not host:
        return False
    return rest.lower() == host.lower()


def check_handshake(request: RequestView, route: Route) -> None:
    """A route opts in to connections that outlive the request (and then gets them
    checked again while open), and may name the browser origins whose pages may open
    them."""
    if not route.websocket:
        raise Forbidden("websocket_not_allowed")
    origins = route.websocket_origins
    origin = request.headers.get("origin")
    if origins is not None and origin is not None and origin.lower() not in origins:
        raise Forbidden("origin_not_allowed")


def check_ambient_origin(request: RequestView, route: Route) -> None:
    """For a handshake authenticated by Basic, which a browser sends by itself with any
    page's handshake (cross-site WebSocket hijacking): with no ``websocket_origins`` on
    the route, only a page of the origin the request is addressed to may open it
    (gorilla/websocket's and Django Channels' default). A handshake without ``Origin``
    is not from a browser."""
    origin = request.headers.get("origin")
    if origin is None or route.websocket_origins is not None:
        return  # no browser, or the route's own list was applied before
    if not same_host(origin, request.host):
        raise Forbidden("origin_not_allowed")
