"""The ASGI application ``bastion serve`` runs: system endpoints, the forward-auth
endpoint and the reverse proxy, over one :class:`~bastion.gateway.runtime.Runtime`.

System paths (``/healthz``, ``/readyz``, ``/metrics``, ``/.well-known/jwks.json`` and the
forward-auth path) are answered by bastion itself, as are the authorization server's
(``/oauth2/...`` and its discovery documents, when ``oauth.enabled``); every other path is
a proxied route.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

import orjson

from bastion.config import Config, config_from_env
from bastion.errors import InternalError, Unavailable
from bastion.gateway import forward_auth, websocket
from bastion.gateway._asgi import SECURITY_HEADERS, Receive, Scope, Send
from bastion.gateway._asgi import send_response as respond
from bastion.gateway._rsgi import RSGIProtocol, RSGIScope, run_asgi
from bastion.gateway.decision import Decision
from bastion.gateway.proxy import send_denial, view_from_scope
from bastion.gateway.runtime import Runtime
from bastion.model import RequestView

AUTHORIZATION_SERVER = "authorization_server"  # the front door named in audit and metrics
log = logging.getLogger("bastion.app")
JSON = ("content-type", "application/json")


class GatewayApp:
    """The gateway as one ASGI callable; starts and stops its runtime on lifespan events."""

    def __init__(self, config: Config, runtime: Runtime | None = None) -> None:
        self.config = config
        self.runtime = runtime
        system = config.system
        self._forward_auth_path = system.forward_auth_path
        self._forward_auth_prefix = system.forward_auth_path.rstrip("/") + "/"
        self._system = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/metrics": self._metrics,
            "/.well-known/jwks.json": self._jwks,
        }

    async def startup(self) -> None:
        if self.runtime is None:
            self.runtime = await Runtime.start(self.config)
            # Everything built so far lives as long as the worker: move it out of the
            # collector's view, so full collections stop walking it under load (long
            # pauses at p99 otherwise).
            gc.collect()
            gc.freeze()

    async def shutdown(self) -> None:
        if self.runtime is not None:
            await self.runtime.aclose()
            self.runtime = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)

    async def _started(self) -> Runtime:
        if self.runtime is None:
            await self.startup()
        runtime = self.runtime
        if runtime is None:  # pragma: no cover - startup either sets it or raises
            raise RuntimeError("runtime not started")
        return runtime

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = await self._started()
        path = scope["path"]
        if path == self._forward_auth_path or path.startswith(self._forward_auth_prefix):
            # Caddy and Traefik copy a client's Upgrade and Connection headers onto the
            # forward-auth request: the server then hands it over as a WebSocket. It is
            # answered as the HTTP request it is, through ASGI's denial response.
            if "websocket.http.response" not in scope.get("extensions", {}):
                await send({"type": "websocket.close", "code": 1008})
                return
            await receive()  # websocket.connect
            as_http = {**scope, "type": "http", "method": "GET"}
            await self._http(as_http, receive, websocket.denial_response(send))
            return
        await runtime.proxy.websocket(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = await self._started()
        path = scope["path"]
        if path == self._forward_auth_path:
            await forward_auth.handle(runtime.gateway, runtime.trust, scope, send)
            return
        if path.startswith(self._forward_auth_prefix):
            raw = scope.get("raw_path")
            if not raw:
                # Deciding on the decoded path while the proxy in front forwards the
                # original would let "/a%2Fb" pass as "/a/b" (RSGI gives no raw path).
                await respond(send, 400, [("x-bastion-error", "raw_path_unavailable")])
                return
            rest = raw.decode("latin-1").partition("?")[0][len(self._forward_auth_path) :]
            await forward_auth.handle(runtime.gateway, runtime.trust, scope, send, rest)
            return
        system = self._system.get(path)
        if system is not None and scope["method"] in ("GET", "HEAD"):
            await system(runtime, scope, send)
            return
        if runtime.oauth is not None and runtime.oauth.handles(path):
            # The authorization server authenticates its callers itself; the per-address
            # limit before authentication holds for its endpoints as for the gateway's.
            # A revocation is counted in process while Redis is out: refusing it would
            # leave the token working (it is recorded in the database either way).
            view = view_from_scope(scope, runtime.trust)
            fallback = runtime.local_limiter if runtime.oauth.takes_access_away(path) else None
            denied = await runtime.gateway.limit_address(
                view, AUTHORIZATION_SERVER, fallback=fallback
            )
            if denied is not None:
                await send_denial(send, denied)
                return
            await self._authorization_server(runtime, view, scope, receive, send)
            return
        await runtime.proxy(scope, receive, send)

    async def _authorization_server(
        self, runtime: Runtime, view: RequestView, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Its answer; one that fails (5xx: the database out, a bug) is audited as a
        denial of the authorization server's front door, with the reason."""
        if runtime.oauth is None:  # pragma: no cover - the caller checked
            return
        started = time.perf_counter()
        status = 0

        async def watched(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await runtime.oauth.app(scope, receive, watched)
        if status >= 500:
            fallback = Unavailable if status == 503 else InternalError
            error = runtime.oauth.failure(scope) or fallback()
            decision = Decision(
                allowed=False, status=status, request_id=view.request_id, error=error
            )
            seconds = time.perf_counter() - started
            runtime.gateway.observer.decided(view, decision, AUTHORIZATION_SERVER, seconds)

    # -- granian's RSGI (see bastion.gateway._rsgi) ----------------------------------

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the runtime in the worker, before it serves (RSGI has no lifespan)."""
        try:
            loop.run_until_complete(self.startup())
        except Exception as exc:  # noqa: BLE001 - one line, then the worker exits
            log.error("bastion failed to start: %s", exc)
            raise SystemExit(1) from None

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.shutdown())

    async def __rsgi__(self, scope: RSGIScope, protocol: RSGIProtocol) -> None:
        runtime = self.runtime
        if scope.proto == "http" and scope.path == self._forward_auth_path and runtime:
            await forward_auth.handle_rsgi(runtime.gateway, runtime.trust, scope, protocol)
            return
        await run_asgi(self, scope, protocol)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # noqa: BLE001 - reported to the server, then exit
                    log.error("bastion failed to start: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _healthz(self, runtime: Runtime, scope: Scope, send: Send) -> None:
        await respond(send, 200, [JSON, *SECURITY_HEADERS], b'{"status":"ok"}')

    async def _readyz(self, runtime: Runtime, scope: Scope, send: Send) -> None:
        checks = await runtime.readiness()
        ok = all(checks.values())
        body = orjson.dumps({"status": "ready" if ok else "not ready", "checks": checks})
        await respond(send, 200 if ok else 503, [JSON, *SECURITY_HEADERS], body)

    async def _metrics(self, runtime: Runtime, scope: Scope, send: Send) -> None:
        # Judged on the client's address, not the proxy's: through a front proxy on
        # loopback every client would otherwise pass as loopback.
        client = runtime.trust.remote(scope).ip
        if not runtime.metrics_allowed(client):
            await respond(send, 404, [JSON, *SECURITY_HEADERS], b'{"code":"not_found"}')
            return
        body, content_type = runtime.metrics.render()
        await respond(send, 200, [("content-type", content_type)], body)

    async def _jwks(self, runtime: Runtime, scope: Scope, send: Send) -> None:
        body = orjson.dumps(runtime.public_jwks())
        headers = [JSON, ("cache-control", "public, max-age=300")]
        await respond(send, 200, headers, body)


def from_env() -> GatewayApp:
    """Factory for the ASGI server: the config ``bastion serve`` checked (``BASTION_CONFIG``
    and its text, bastion.config.CONFIG_TEXT_ENV)."""
    return GatewayApp(config_from_env())
