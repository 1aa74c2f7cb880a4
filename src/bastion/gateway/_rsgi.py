"""granian's RSGI interface: the forward-auth endpoint answered natively, everything else
through a small bridge to the ASGI app.

Under load, granian's RSGI costs the worker much less than its ASGI (one synchronous
``response_empty`` call instead of two awaited ``send`` messages; header values stay
``str``): see docs/benchmarks.md. RSGI gives only the *decoded* request path, so the
bridge hands ASGI code a scope without ``raw_path``; code that needs the path as sent
(the proxy's encoded-separator check, the Envoy path-prefix form) must refuse or
re-encode — which is why ``bastion serve`` picks RSGI only for deployments without
proxied routes (see :func:`wants_rsgi`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

from bastion.config import Config
from bastion.gateway._asgi import ASGIApp, Message, Scope

log = logging.getLogger("bastion.rsgi")


class RSGIHeaders(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...

    def items(self) -> list[tuple[str, str]]: ...


class RSGIScope(Protocol):
    proto: str
    http_version: str
    scheme: str
    method: str
    path: str
    query_string: str
    client: str
    server: str

    @property
    def headers(self) -> RSGIHeaders: ...


class RSGIStream(Protocol):
    async def send_bytes(self, data: bytes) -> None: ...


class RSGIProtocol(Protocol):
    async def __call__(self) -> bytes: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def client_disconnect(self) -> None: ...

    def response_empty(self, status: int, headers: list[tuple[str, str]]) -> None: ...

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> RSGIStream: ...


def wants_rsgi(config: Config) -> bool:
    """Whether granian should serve RSGI: only when no route is proxied, so nothing
    needs the raw request path that RSGI does not give."""
    return all(route.upstream is None for route in config.routes)


def split_address(value: str) -> tuple[str, int]:
    """``"127.0.0.1:5000"`` or ``"[::1]:5000"`` → (host, port); ("", 0) if malformed."""
    host, _, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (host, int(port)) if port.isdigit() else ("", 0)


def header_dict(headers: RSGIHeaders) -> dict[str, str]:
    """Lower-case names (granian gives them so); repeated headers joined with ", "."""
    items = headers.items()
    merged = dict(items)
    if len(merged) == len(items):
        return merged  # the common case: no header sent twice
    merged = {}
    for name, value in items:
        merged[name] = merged[name] + ", " + value if name in merged else value
    return merged


def asgi_scope(scope: RSGIScope) -> Scope:
    """The ASGI ``http`` scope of an RSGI request (no ``raw_path``: RSGI has none)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": scope.http_version,
        "method": scope.method,
        "scheme": scope.scheme,
        "path": scope.path,
        "raw_path": None,
        "query_string": scope.query_string.encode("latin-1"),
        "root_path": "",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in scope.headers.items()],
        "client": split_address(scope.client),
        "server": split_address(scope.server),
        "state": {},
    }


class _Bridge:
    """One request's ASGI ``receive``/``send`` over an RSGI protocol object."""

    def __init__(self, protocol: RSGIProtocol) -> None:
        self.protocol = protocol
        self.body: AsyncIterator[bytes] | None = None
        self.body_read = False
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.pending: list[bytes] = []
        self.stream: RSGIStream | None = None
        self.done = False

    async def receive(self) -> Message:
        """The body chunk by chunk, as granian reads it (never buffered whole here: the
        app's own size limits apply), then the client's disconnect."""
        if not self.body_read:
            if self.body is None:
                self.body = self.protocol.__aiter__()
            try:
                chunk = await anext(self.body)
            except StopAsyncIteration:
                self.body_read = True
                return {"type": "http.request", "body": b"", "more_body": False}
            except Exception:  # noqa: BLE001 - the client went away mid-body
                self.body_read = True
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": bytes(chunk), "more_body": True}
        await self.protocol.client_disconnect()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = int(message["status"])
            # granian frames the body itself: a Content-Length from the app is dropped.
            self.headers = [
                (name, v.decode("latin-1"))
                for k, v in message.get("headers", [])
                if (name := k.decode("latin-1").lower()) != "content-length"
            ]
            return
        if kind != "http.response.body" or self.done:
            return
        body = bytes(message.get("body", b""))
        if message.get("more_body", False):
            if self.stream is None:
                # Small bodies sent in pieces are joined; past 64 KiB the response streams.
                self.pending.append(body)
                if sum(map(len, self.pending)) < 64 * 1024:
                    return
                self.stream = self.protocol.response_stream(self.status, self.headers)
                body, self.pending = b"".join(self.pending), []
            await self.stream.send_bytes(body)
            return
        self.done = True
        if self.stream is not None:
            await self.stream.send_bytes(body)
            return
        data = b"".join([*self.pending, body])
        if data:
            self.protocol.response_bytes(self.status, self.headers, data)
        else:
            self.protocol.response_empty(self.status, self.headers)


async def run_asgi(app: ASGIApp, scope: RSGIScope, protocol: RSGIProtocol) -> None:
    """Serve one RSGI request with an ASGI app. An app that ends without a response
    gets a bare 500, as ASGI servers do."""
    bridge = _Bridge(protocol)
    try:
        await app(asgi_scope(scope), bridge.receive, bridge.send)
    except Exception:  # logged; the client gets a bare 500
        log.exception("request failed")
    if not bridge.done and bridge.stream is None:
        bridge.done = True
        protocol.response_empty(500, [])
