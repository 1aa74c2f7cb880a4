"""WebSocket connections: the handshake decided like any request, then the credential
watched while the connection is open (continuous authentication).

A connection outlives the request that opened it, so a check at the handshake alone
would let a revoked key or an expired token keep a socket for hours. :class:`Watch`
closes the connection (1008) when the credential expires, or when a re-check every
``websockets.recheck_seconds`` refuses it; the re-check is audited like any decision.
The proxy relays messages between the client and the route's upstream
(bastion.gateway._ws_proxy); the embedding middleware runs the app under the same watch.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable
from typing import NamedTuple

from bastion.config import WebSocketConfig
from bastion.errors import RateLimited, Unavailable
from bastion.gateway._asgi import Message, Receive, Scope, Send, Trust
from bastion.gateway.core import Gateway
from bastion.gateway.decision import Decision
from bastion.gateway.routes import Route
from bastion.model import Principal, RequestView
from bastion.ratelimit import ip_bucket

# RFC 6455 §7.4.1: codes an endpoint may send in a close frame.
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013
BAD_GATEWAY = 1014
GOING_AWAY = 1001
NORMAL = 1000
_UNSENDABLE = frozenset({1004, 1005, 1006, 1015})

# Browsers cannot set a header on a WebSocket handshake: a page offers its bearer token
# as the subprotocol "bastion.bearer.<token>" beside "bastion" (Kubernetes' way). Neither
# goes upstream; "bastion" is what is answered when the upstream chooses no subprotocol
# (a browser fails a handshake whose answer names none of the ones it offered).
BASTION_PROTOCOL = "bastion"
BEARER_PROTOCOL = "bastion.bearer."

Close = tuple[int, str]  # close code and reason
CLIENT_CLOSED = "client_closed"


def sendable(code: int | None, fallback: int = NORMAL) -> int:
    """A close code that may go into a close frame (``fallback`` for 1005/1006 and the
    like, which only describe a connection that closed without one)."""
    if code is None or code in _UNSENDABLE or not (1000 <= code <= 1014 or 3000 <= code <= 4999):
        return fallback
    return code


def close_for(decision: Decision) -> Close:
    """The close frame for a refused re-check: a refused credential is a policy
    violation; a limit or an unavailable dependency asks the client to come back."""
    if decision.status in (401, 403):
        return POLICY_VIOLATION, decision.code
    return (TRY_AGAIN_LATER if decision.status in (429, 503) else INTERNAL_ERROR), decision.code


def protocol_credential(headers: dict[str, str], offered: Iterable[str]) -> dict[str, str]:
    """``headers`` of a WebSocket handshake whose client ``offered`` a token as the
    subprotocol ``bastion.bearer.<token>``, with the ``Authorization: Bearer`` it stands
    for (a copy; ``headers`` itself when there is none, or when ``Authorization`` is sent
    too). Servers keep the subprotocols apart from the headers (the ASGI scope's
    ``subprotocols``); behind a proxy they are the ``Sec-WebSocket-Protocol`` header."""
    if "authorization" in headers:
        return headers
    for protocol in offered:
        protocol = protocol.strip()
        if protocol.startswith(BEARER_PROTOCOL):
            return {**headers, "authorization": "Bearer " + protocol[len(BEARER_PROTOCOL) :]}
    return headers


def app_protocols(offered: list[str]) -> list[str]:
    """The subprotocols a client offered, but bastion's own."""
    return [p for p in offered if p != BASTION_PROTOCOL and not p.startswith(BEARER_PROTOCOL)]


def chosen_protocol(offered: list[str], chosen: str | None) -> str | None:
    """The subprotocol to answer: the upstream's (or app's) choice, else ``bastion`` if
    the client offered it."""
    if chosen is None and BASTION_PROTOCOL in offered:
        return BASTION_PROTOCOL
    return chosen


class Handshake(NamedTuple):
    """An allowed handshake: what the client sent, and the decision's parts."""

    connect: Message
    view: RequestView
    decision: Decision
    route: Route
    principal: Principal


async def decide_handshake(
    gateway: Gateway, trust: Trust, scope: Scope, receive: Receive, send: Send, front_door: str
) -> Handshake | None:
    """Decide a WebSocket handshake; None when it was refused (the refusal sent) or the
    client left before it."""
    from bastion.gateway.proxy import view_from_scope  # the proxy imports this module

    connect = await receive()
    if connect["type"] != "websocket.connect":
        return None
    view = view_from_scope(scope, trust)
    decision = await gateway.decide(view, front_door)
    route, principal = decision.route, decision.principal
    if not decision.allowed or route is None or principal is None:
        await deny_handshake(scope, send, decision)
        return None
    return Handshake(connect, view, decision, route, principal)


def denial_response(send: Send) -> Send:
    """``send`` for an HTTP response given in answer to a WebSocket handshake (ASGI's
    ``websocket.http.response`` extension)."""

    async def denial(message: Message) -> None:
        kind = message["type"]
        if kind in ("http.response.start", "http.response.body"):
            message = {**message, "type": "websocket." + kind}
        await send(message)

    return denial


async def deny_handshake(scope: Scope, send: Send, decision: Decision) -> None:
    """Refuse a handshake with the response any refused request gets (status, challenge,
    problem body) where the server supports ASGI's denial response; else a plain
    refusal (403)."""
    from bastion.gateway.proxy import send_denial  # the proxy imports this module

    if "websocket.http.response" in scope.get("extensions", {}):
        await send_denial(denial_response(send), decision)
        return
    await send({"type": "websocket.close", "code": POLICY_VIOLATION})


class Capacity:
    """Open connections, per worker and per client address, within the configured
    bounds (``websockets.max_connections``, ``max_per_client``)."""

    RETRY_SECONDS = 5

    def __init__(self, settings: WebSocketConfig, ipv6_prefix: int) -> None:
        self.max_total = settings.max_connections
        self.max_per_client = settings.max_per_client
        self.ipv6_prefix = ipv6_prefix
        self.total = 0
        self._per_client: dict[str, int] = {}

    def take(self, client_ip: str) -> str:
        """Count one more connection of ``client_ip``; the key to :meth:`give_back`.

        Raises:
            Unavailable: the worker holds ``max_connections`` already (503).
            RateLimited: the client holds ``max_per_client`` already (429).
        """
        bucket = ip_bucket(client_ip, self.ipv6_prefix)
        held = self._per_client.get(bucket, 0)
        if self.total >= self.max_total:
            raise Unavailable("websocket_capacity")
        if held >= self.max_per_client:
            retry = self.RETRY_SECONDS
            raise RateLimited(
                "websocket_connections_per_client",
                retry_after=retry,
                headers=[("Retry-After", str(retry))],
            )
        self._per_client[bucket] = held + 1
        self.total += 1
        return bucket

    def give_back(self, bucket: str) -> None:
        self.total -= 1
        left = self._per_client[bucket] - 1
        if left:
            self._per_client[bucket] = left
        else:
            del self._per_client[bucket]


class Watch:
    """When an open connection must close, its credential's expiry, a refused re-check
    and (when ``idle_seconds`` is set) a connection with no traffic deciding."""

    def __init__(
        self,
        gateway: Gateway,
        view: RequestView,
        route: Route,
        principal: Principal,
        settings: WebSocketConfig,
        front_door: str,
        *,
        idle_seconds: float | None = None,
    ) -> None:
        self.gateway = gateway
        self.view = view
        self.route = route
        self.principal = principal
        self.front_door = front_door
        self.recheck_seconds = settings.recheck_seconds
        self.idle_seconds = idle_seconds
        self.last_traffic = time.monotonic()

    def touch(self) -> None:
        self.last_traffic = time.monotonic()

    async def closing(self) -> Close:
        """Wait until the connection must close; the close frame to send."""
        gateway, route = self.gateway, self.route
        wait_for_credential = math.inf if route.config.public else self.recheck_seconds
        next_check = time.monotonic() + wait_for_credential
        expires_at = self.principal.expires_at
        while True:
            now = time.monotonic()
            if expires_at is not None and gateway.clock() >= expires_at:
                # Exactly at expiry, whatever leeway verification allows.
                next_check = now
            if now >= next_check:
                denied = await gateway.recheck(
                    self.view, route, self.front_door, handshake=self.principal
                )
                if denied is not None:
                    return close_for(denied)
                next_check = time.monotonic() + wait_for_credential
                continue
            wait = next_check - now
            if expires_at is not None:
                wait = min(wait, max(0.0, expires_at - gateway.clock()))
            if self.idle_seconds is not None:
                idle_left = self.last_traffic + self.idle_seconds - now
                if idle_left <= 0:
                    return GOING_AWAY, "idle_timeout"
                wait = min(wait, idle_left)
            await asyncio.sleep(wait)
