"""The reverse-proxy front door: decide, then stream the request to the route's upstream
and the response back (aiohttp's client: DESIGN.md measured httpx collapsing under load).

Hop-by-hop headers (RFC 9110 §7.6.1) are never forwarded; client-supplied identity
headers are always removed so the upstream sees only what bastion asserts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from bastion.errors import BadRequest, BastionError, RateLimited, RequestTimeout
from bastion.gateway._asgi import (
    SECURITY_HEADERS,
    Message,
    Receive,
    Scope,
    Send,
    Trust,
    bounded_receive,
    header_dict,
    request_id,
    send_response,
)
from bastion.gateway._hardening import Hardening
from bastion.gateway._headers import PROXY_ONLY, header_key
from bastion.gateway.core import Gateway
from bastion.gateway.decision import PROBLEM_TYPE, Decision
from bastion.gateway.routes import Route
from bastion.gateway.websocket import protocol_credential
from bastion.model import CredentialType, RequestView

if TYPE_CHECKING:  # aiohttp loads only where a route proxies: a worker that only
    import aiohttp  # decides spares its memory (tests/gateway/test_footprint.py)

    from bastion.gateway._ws_proxy import WebSocketProxy

log = logging.getLogger("bastion.proxy")
FRONT_DOOR = "proxy"

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
PATH_SAFE = "/:@!$&'()*+,;=-._~"
SMALL_BODY = 64 * 1024  # responses up to this size are sent in one piece


class BadGateway(BastionError):
    status = 502
    code = "bad_gateway"
    title = "Bad gateway"


class GatewayTimeout(BastionError):
    status = 504
    code = "gateway_timeout"
    title = "Gateway timeout"


def refuse(decision: Decision, error: BastionError) -> Decision:
    """``decision`` turned into a denial by what happened after it (the upstream's part)."""
    decision.allowed, decision.status, decision.error = False, error.status, error
    if isinstance(error, RateLimited):
        decision.headers = list(error.headers)  # Retry-After, not the allowed limits'
    return decision


def view_from_scope(scope: Scope, trust: Trust) -> RequestView:
    """The request as the client sent it to bastion directly."""
    headers = header_dict(scope["headers"])
    if scope["type"] == "websocket":
        headers = protocol_credential(headers, scope.get("subprotocols") or ())
    remote = trust.remote(scope, headers)
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(scope["path"], safe=PATH_SAFE)
    return RequestView(
        method=scope.get("method", "GET"),  # a WebSocket handshake is a GET
        path=path.partition("?")[0],
        query=scope.get("query_string", b"").decode("latin-1"),
        host=headers.get("host", ""),
        headers=headers,
        client_ip=remote.ip,
        secure=remote.secure,
        request_id=request_id(headers, remote.trusted),
    )


async def send_denial(send: Send, decision: Decision) -> None:
    headers = [
        ("content-type", PROBLEM_TYPE),
        *SECURITY_HEADERS,
        *decision.headers,
        ("x-request-id", decision.request_id),
    ]
    body = b"" if decision.route is None and decision.status == 405 else decision.problem_body()
    await send_response(send, decision.status, headers, body)


class Proxy:
    """Forward allowed requests to their route's upstream."""

    def __init__(
        self,
        gateway: Gateway,
        trust: Trust,
        *,
        on_upstream_error: Callable[[str], None] | None = None,
    ) -> None:
        self.gateway = gateway
        self._on_upstream_error = on_upstream_error
        self.trust = trust
        self.max_body = gateway.config.limits.max_body_bytes
        self.body_idle = gateway.config.limits.body_idle_seconds
        self.send_idle = gateway.config.limits.send_idle_seconds
        self.hardening = Hardening(gateway.config.response_headers)
        self._session: aiohttp.ClientSession | None = None
        self._websockets: WebSocketProxy | None = None
        self._timeouts: dict[str, aiohttp.ClientTimeout] = {}
        self._drop = HOP_BY_HOP | PROXY_ONLY | {"expect"}
        self._credentials = frozenset({"authorization", header_key(gateway.config.api_keys.header)})

    async def start(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=512, limit_per_host=256, ttl_dns_cache=60)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    async def close(self) -> None:
        if self._websockets is not None:
            await self._websockets.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        view = view_from_scope(scope, self.trust)
        decision = await self.gateway.decide(view, FRONT_DOOR)
        route = decision.route
        if not decision.allowed or route is None:
            await send_denial(send, decision)
            return
        if route.config.upstream is None:
            await send_denial(send, refuse(decision, BadGateway("route_without_upstream")))
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = True
            try:
                # A client that stops reading would hold the upstream connection (and a
                # slot of the pool every request shares) for good (nginx: send_timeout).
                async with asyncio.timeout(self.send_idle):
                    await send(message)
            except TimeoutError:
                raise RequestTimeout("send_timeout") from None

        try:
            base = str(route.config.upstream).rstrip("/")
            await self._forward(view, decision, route, base, receive, tracked_send)
        except BastionError as exc:
            if started:  # too late for an error response: the client sees a cut stream
                log.warning("upstream stream of %s aborted: %s", route.name, exc.reason)
                return
            await send_denial(send, refuse(decision, exc))

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket handshake: decided, then relayed to the route's upstream while the
        credential holds (bastion.gateway._ws_proxy, loaded on the first one)."""
        if self._websockets is None:
            from bastion.gateway._ws_proxy import WebSocketProxy

            self._websockets = WebSocketProxy(self)
        await self._websockets(scope, receive, send)

    @property
    def open_websockets(self) -> int:
        return 0 if self._websockets is None else self._websockets.capacity.total

    def upstream_headers(
        self, view: RequestView, decision: Decision, route: Route
    ) -> list[tuple[str, str]]:
        """What the upstream receives: the client's headers but hop-by-hop ones, identity
        headers, headers only a proxy may set (docs/security.md's trust table) and, unless
        the route forwards them, credentials — each compared as CGI-style upstreams read
        names (``_`` as ``-``) — then bastion's own address headers and identity."""
        drop = self._drop
        connection = view.headers.get("connection")
        if connection:
            drop = drop | {header_key(t.strip()) for t in connection.split(",") if t.strip()}
        if not route.config.forward_credentials:
            drop = drop | self._credentials
        is_identity = self.gateway.is_identity_header
        headers = [
            (name, value)
            for name, value in view.headers.items()
            if (name if "_" not in name else name.replace("_", "-")) not in drop
            and not is_identity(name.replace("_", "-"))
        ]
        headers.append(("x-forwarded-for", view.client_ip))
        headers.append(("x-real-ip", view.client_ip))
        headers.append(("x-forwarded-proto", "https" if view.secure else "http"))
        if view.host:
            headers.append(("x-forwarded-host", view.host))
        headers.extend(decision.upstream_headers)
        return headers

    async def _forward(
        self,
        view: RequestView,
        decision: Decision,
        route: Route,
        base: str,
        receive: Receive,
        send: Send,
    ) -> None:
        import aiohttp

        session = self._session or await self.start()
        path = quote(route.upstream_path(decision.path), safe=PATH_SAFE)
        url = base + path + ("?" + view.query if view.query else "")
        declared = view.headers.get("content-length")
        body = None
        if (declared is not None or "transfer-encoding" in view.headers) and declared != "0":
            body = _Body(bounded_receive(receive, self.max_body, self.body_idle), declared)
        headers = self.upstream_headers(view, decision, route)
        if declared is not None and body is not None:
            headers.append(("content-length", declared))
        timeout = self._timeouts.get(route.name)
        if timeout is None:
            timeout = self._timeouts[route.name] = aiohttp.ClientTimeout(
                # connect: waiting for a pooled connection and opening one, bounded.
                total=None,
                connect=30,
                sock_connect=10,
                sock_read=route.config.timeout_seconds,
            )
        try:
            async with session.request(
                view.method,
                url,
                headers=headers,
                data=None if body is None else body.chunks(),
                allow_redirects=False,
                timeout=timeout,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            ) as upstream:
                if not 200 <= upstream.status <= 599:
                    # A final 1xx (101 to a request that asked for no upgrade) or a status
                    # outside HTTP's range: relayed, it could make a proxy in front treat
                    # the connection as switched. Refused like an unreachable upstream.
                    self.upstream_failed(route.name)
                    log.warning("upstream %s answered status %d", route.name, upstream.status)
                    raise BadGateway("upstream_bad_status")
                out = [
                    (k, v)
                    for k, v in upstream.raw_headers
                    if k.decode("latin-1").lower() not in HOP_BY_HOP
                ]
                length = upstream.headers.get("content-length")
                if length is not None:
                    out.append((b"content-length", length.encode()))
                out.append((b"x-request-id", decision.request_id.encode()))
                for name, value in decision.headers:
                    out.append((name.encode(), value.encode()))
                authenticated = (
                    decision.principal is not None
                    and decision.principal.credential is not CredentialType.ANONYMOUS
                )
                out = self.hardening.apply(out, authenticated=authenticated, secure=view.secure)
                await send(
                    {"type": "http.response.start", "status": upstream.status, "headers": out}
                )
                if length is not None and length.isdigit() and int(length) <= SMALL_BODY:
                    # A small body in one message: no per-chunk round trips to the server.
                    content = await upstream.read()
                    await send({"type": "http.response.body", "body": content, "more_body": False})
                    return
                async for chunk in upstream.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except BadRequest:
            raise  # the client's: a body too large, stalled or cut short; a stalled reader
        except TimeoutError:
            self.upstream_failed(route.name)
            raise GatewayTimeout("upstream_timeout") from None
        except (aiohttp.ClientError, OSError) as exc:
            if body is not None and body.failure is not None:
                # aiohttp reports what the request body raised as the upstream connection
                # failing: the client failed, not the upstream.
                raise body.failure from None
            self.upstream_failed(route.name)
            log.warning("upstream %s failed: %s", route.name, exc.__class__.__name__)
            raise BadGateway("upstream_unreachable") from None

    def upstream_failed(self, route: str) -> None:
        if self._on_upstream_error is not None:
            self._on_upstream_error(route)


class IncompleteBody(BadRequest):
    code = "incomplete_body"
    title = "Incomplete request body"


class _Body:
    """A client's request body on its way to the upstream: each piece bounded in size and
    time (:func:`bounded_receive`), and a body that ends before its ``Content-Length``, a
    malformed chunk or a client that leaves mid-body refused as the client's error (400),
    which aiohttp would report as the upstream connection failing."""

    def __init__(self, read: Receive, declared: str | None) -> None:
        self._read = read
        self._declared = int(declared) if declared is not None else None
        self.failure: BadRequest | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._pieces():
                yield chunk
        except BadRequest as exc:
            self.failure = exc
            raise

    async def _pieces(self) -> AsyncIterator[bytes]:
        received = 0
        while True:
            message = await self._read()
            if message["type"] == "http.disconnect":
                # granian reports a body cut short or badly chunked as a disconnect too.
                raise IncompleteBody("body_incomplete")
            chunk = message.get("body", b"")
            received += len(chunk)
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                if self._declared is not None and received != self._declared:
                    raise IncompleteBody("body_length_mismatch")
                return
