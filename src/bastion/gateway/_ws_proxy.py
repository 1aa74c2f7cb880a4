"""The proxy front door's WebSockets: the handshake decided, the upstream's handshake
made with aiohttp, then messages relayed both ways while the credential holds
(:class:`~bastion.gateway.websocket.Watch`). Loaded on the first handshake only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote

import aiohttp

from bastion.errors import BastionError
from bastion.gateway import websocket as ws
from bastion.gateway._asgi import Message, Receive, Scope, Send
from bastion.gateway.proxy import PATH_SAFE, BadGateway, GatewayTimeout, refuse
from bastion.gateway.routes import Route

if TYPE_CHECKING:
    from bastion.gateway.proxy import Proxy

log = logging.getLogger("bastion.websocket")
FRONT_DOOR = "proxy"


class _Redirected(Exception):
    """An upstream answered a WebSocket handshake with a redirect."""


class WebSocketProxy:
    """Relay allowed WebSockets to their route's upstream."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.gateway = proxy.gateway
        self.settings = proxy.gateway.config.websockets
        self.capacity = ws.Capacity(self.settings, proxy.gateway.config.rate_limits.ipv6_prefix)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connected = await self._connect(scope, receive, send)
        if connected is None:
            return
        upstream, handshake, held = connected
        decision, route = handshake.decision, handshake.route
        accept = [(b"x-request-id", decision.request_id.encode())]
        accept += [(k.encode(), v.encode()) for k, v in decision.headers]
        settings = self.settings
        watch = ws.Watch(
            self.gateway,
            handshake.view,
            route,
            handshake.principal,
            settings,
            FRONT_DOOR,
            idle_seconds=settings.idle_seconds,
        )
        relay = Relay(
            receive,
            send,
            upstream,
            watch,
            max_bytes=settings.max_message_bytes,
            send_idle=self.proxy.send_idle,
        )
        opened, close = time.monotonic(), (ws.NORMAL, "accept_failed")
        try:
            subprotocol = ws.chosen_protocol(scope.get("subprotocols") or [], upstream.protocol)
            await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": accept})
            close = await relay.run()
        finally:
            self.capacity.give_back(held)
            if not upstream.closed:
                with contextlib.suppress(Exception):  # gone already, or never answering
                    await asyncio.wait_for(upstream.close(), timeout=5)
            log.info(
                "websocket closed: route=%s request_id=%s code=%d reason=%s seconds=%.1f",
                route.name,
                decision.request_id,
                *close,
                time.monotonic() - opened,
            )

    async def _connect(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[aiohttp.ClientWebSocketResponse, ws.Handshake, str] | None:
        """The handshake decided, a place taken within the capacity (its key is the
        third item) and the upstream's side opened; None when refused (the refusal
        sent)."""
        handshake = await ws.decide_handshake(
            self.gateway, self.proxy.trust, scope, receive, send, FRONT_DOOR
        )
        if handshake is None:
            return None
        view, decision, route = handshake.view, handshake.decision, handshake.route
        try:
            if route.config.upstream is None:
                raise BadGateway("route_without_upstream")
            base = str(route.config.upstream).rstrip("/")
            url = "ws" + base[4:] + quote(route.upstream_path(decision.path), safe=PATH_SAFE)
            if view.query:
                url += "?" + view.query
            headers = [
                (name, value)
                for name, value in self.proxy.upstream_headers(view, decision, route)
                if not name.startswith("sec-websocket-")
            ]
            held = self.capacity.take(view.client_ip)
            try:
                offered = ws.app_protocols(scope.get("subprotocols") or [])
                upstream = await self._open(route, url, headers, offered)
            except BaseException:
                self.capacity.give_back(held)
                raise
        except BastionError as exc:
            await ws.deny_handshake(scope, send, refuse(decision, exc))
            return None
        return upstream, handshake, held

    async def _open(
        self, route: Route, url: str, headers: list[tuple[str, str]], protocols: Iterable[str]
    ) -> aiohttp.ClientWebSocketResponse:
        """The upstream's side; BadGateway or GatewayTimeout if it cannot be had."""
        session = self._session or self._start()
        try:
            async with asyncio.timeout(route.config.timeout_seconds):
                return await session.ws_connect(
                    url,
                    headers=headers,
                    protocols=protocols,
                    max_msg_size=self.settings.max_message_bytes,
                    autoclose=False,
                    autoping=True,
                    compress=0,
                )
        except _Redirected:
            reason = "upstream_redirected_websocket"
        except aiohttp.WSServerHandshakeError as exc:
            reason = f"upstream_refused_websocket:{exc.status}"
        except TimeoutError:
            self.proxy.upstream_failed(route.name)
            raise GatewayTimeout("upstream_timeout") from None
        except (aiohttp.ClientError, OSError) as exc:
            reason = f"upstream_unreachable:{exc.__class__.__name__}"
        self.proxy.upstream_failed(route.name)
        log.warning("websocket to upstream %s failed: %s", route.name, reason)
        raise BadGateway(reason)

    def _start(self) -> aiohttp.ClientSession:
        """The handshakes' own client: aiohttp's ``ws_connect`` follows redirects and
        takes no option not to; a redirect would carry the identity headers to a host the
        config does not name, so it ends the handshake."""

        async def redirected(*_: object) -> None:
            raise _Redirected

        trace = aiohttp.TraceConfig()
        trace.on_request_redirect.append(redirected)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=60),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            trace_configs=[trace],
        )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Relay:
    """Messages both ways between a client (ASGI) and an upstream (aiohttp) until one
    side closes or the watch decides; then both sides are closed."""

    def __init__(
        self,
        receive: Receive,
        send: Send,
        upstream: aiohttp.ClientWebSocketResponse,
        watch: ws.Watch,
        *,
        max_bytes: int,
        send_idle: float,
    ) -> None:
        self.receive, self.send, self.upstream, self.watch = receive, send, upstream, watch
        self.max_bytes = max_bytes
        self.send_idle = send_idle

    async def run(self) -> ws.Close:
        """Relay until the end; the close sent to the client (or received from it)."""
        sides = {
            asyncio.ensure_future(self._from_client()): "client",
            asyncio.ensure_future(self._from_upstream()): "upstream",
            asyncio.ensure_future(self.watch.closing()): "watch",
        }
        try:
            done, _ = await asyncio.wait(sides, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in sides:
                task.cancel()
            await asyncio.gather(*sides, return_exceptions=True)
        task = next(iter(done))
        side = sides[task]
        error = task.exception()
        if error is None:
            code, reason = task.result()
        else:  # a peer that went away mid-send, or a send that timed out
            log.info("websocket %s relay ended: %s", side, error.__class__.__name__)
            timed_out = isinstance(error, TimeoutError)
            code, reason = ws.GOING_AWAY, "send_timeout" if timed_out else f"{side}_gone"
        if reason != ws.CLIENT_CLOSED:
            with contextlib.suppress(Exception):  # the client may be gone already
                await self.send({"type": "websocket.close", "code": code, "reason": reason})
        upstream_code = code if side != "watch" else ws.GOING_AWAY
        with contextlib.suppress(Exception):  # the upstream may be gone already
            await asyncio.wait_for(self.upstream.close(code=upstream_code), timeout=5)
        return code, reason

    async def _timed(self, step: Awaitable[None]) -> None:
        # A peer that stops reading cannot hold the connection (nginx's send_timeout).
        async with asyncio.timeout(self.send_idle):
            await step

    async def _from_client(self) -> ws.Close:
        while True:
            message = await self.receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                return ws.sendable(message.get("code")), ws.CLIENT_CLOSED
            if kind != "websocket.receive":
                continue
            if _size(message) > self.max_bytes:
                return ws.MESSAGE_TOO_BIG, "message_too_big"
            self.watch.touch()
            text = message.get("text")
            if text is not None:
                await self._timed(self.upstream.send_str(text))
            else:
                await self._timed(self.upstream.send_bytes(message.get("bytes") or b""))

    async def _from_upstream(self) -> ws.Close:
        upstream = self.upstream
        while True:
            message = await upstream.receive()
            kind = message.type
            if kind is aiohttp.WSMsgType.TEXT:
                self.watch.touch()
                await self._timed(self.send({"type": "websocket.send", "text": message.data}))
            elif kind is aiohttp.WSMsgType.BINARY:
                self.watch.touch()
                await self._timed(self.send({"type": "websocket.send", "bytes": message.data}))
            elif kind is aiohttp.WSMsgType.CLOSE:
                return ws.sendable(message.data), "upstream_closed"
            elif kind is aiohttp.WSMsgType.ERROR:
                if upstream.close_code == ws.MESSAGE_TOO_BIG:
                    return ws.MESSAGE_TOO_BIG, "message_too_big"
                return ws.BAD_GATEWAY, "upstream_error"
            elif kind in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return ws.BAD_GATEWAY, "upstream_closed"


def _size(message: Message) -> int:
    text = message.get("text")
    if text is not None:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(message.get("bytes") or b"")
