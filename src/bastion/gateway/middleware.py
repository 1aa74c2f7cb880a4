"""The embedded front door: ASGI middleware for Starlette/FastAPI apps, and a FastAPI
dependency for per-endpoint requirements.

    app = FastAPI()
    app.add_middleware(BastionMiddleware, config="bastion.yaml")

    @app.get("/reports")
    def reports(principal: Principal = Depends(require(scopes=["reports:read"]))): ...

The middleware runs the same decision core as the proxy and forward-auth front doors
(routes in the config describe the app's own paths; ``upstream`` is not needed) and puts
the :class:`~bastion.model.Principal` in ``request.state.principal``. An allowed request's
audit line is written when the app answers (or fails), so that what ``require()`` decides
on top (a refusal, or the principal it authenticated on a public route) is what the one
line for the request says.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bastion.config import AuthMethod, Config, load_config
from bastion.errors import AuthenticationError, BastionError, PayloadTooLarge, RequestTimeout
from bastion.gateway import websocket
from bastion.gateway._asgi import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    bounded_receive,
    remote_of,
)
from bastion.gateway._headers import PROXY_ONLY, header_key
from bastion.gateway.core import Gateway
from bastion.gateway.decision import Decision
from bastion.gateway.proxy import refuse, send_denial, view_from_scope
from bastion.gateway.runtime import Runtime
from bastion.model import CredentialType, Principal, RequestView

FRONT_DOOR = "middleware"
PRINCIPAL_KEY = "bastion.principal"
DECISION_KEY = "bastion.decision"


class _Decided:
    """An allowed request's decision, for :func:`require` to add to, and its audit line,
    written once: when the app starts its answer, or when it ends without one."""

    def __init__(self, gateway: Gateway, view: RequestView, decision: Decision, seconds: float):
        self.gateway, self.view, self.decision, self.seconds = gateway, view, decision, seconds
        self._observed = False

    def observe(self) -> None:
        if not self._observed:
            self._observed = True
            self.gateway.observer.decided(self.view, self.decision, FRONT_DOOR, self.seconds)


class BastionMiddleware:
    """Authenticate, authorize, rate-limit and audit every HTTP request to ``app``.

    Args:
        app: the ASGI application to protect.
        config: a :class:`Config`, or the path of a ``bastion.yaml``.
        runtime: an already started :class:`Runtime` (tests, or sharing one between apps).
    """

    def __init__(
        self,
        app: ASGIApp,
        config: Config | str | os.PathLike[str] | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        if runtime is None and config is None:
            raise ValueError("BastionMiddleware needs a config or a runtime")
        self.app = app
        self._config = config
        self._runtime = runtime
        self._lock = asyncio.Lock()
        self._capacity: websocket.Capacity | None = None

    async def _ensure(self) -> Runtime:
        if self._runtime is not None:
            return self._runtime
        async with self._lock:
            if self._runtime is None:
                config = self._config
                if not isinstance(config, Config):
                    config = load_config(config)  # type: ignore[arg-type]
                self._runtime = await Runtime.start(config)
        return self._runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await self._websocket(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        runtime = await self._ensure()
        view = view_from_scope(scope, runtime.trust)
        started_at = time.perf_counter()
        decision = await runtime.gateway.decide(view, FRONT_DOOR, observe=False)
        decided = _Decided(runtime.gateway, view, decision, time.perf_counter() - started_at)
        if not decision.allowed:
            decided.observe()
            await send_denial(send, decision)
            return
        scope[DECISION_KEY] = decided
        scope[PRINCIPAL_KEY] = decision.principal
        scope["headers"] = app_headers(scope, decision, runtime)
        state = scope.setdefault("state", {})
        state["principal"] = decision.principal
        state["request_id"] = decision.request_id
        try:
            await self._run(scope, receive, send, runtime, decided)
        finally:
            decided.observe()

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, runtime: Runtime, decided: _Decided
    ) -> None:
        """The app, on an allowed request: its body bounded, its refusals answered."""
        decision = decided.decision
        limits = runtime.config.limits
        body = bounded_receive(receive, limits.max_body_bytes, limits.body_idle_seconds)
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        secure = decided.view.secure
        try:
            await self.app(scope, body, _with_headers(tracked, decided, runtime, secure))
        except (PayloadTooLarge, RequestTimeout) as exc:
            # The app was reading a body that grew too large or stopped coming.
            if started:
                raise
            await send_denial(send, refuse(decision, exc))
        except BastionHTTPError as exc:
            # require() refused and no handler rendered it (install_error_handler not
            # called, or a handler of the app's re-raised): answered here, never a 500.
            if started:
                raise
            if decision.allowed:  # raised by the app itself, not by require()
                refuse(decision, exc.error).headers.extend(exc.headers)
            await send_denial(send, decision)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Decide the handshake; run the app's endpoint while the credential holds."""
        runtime = await self._ensure()
        handshake = await websocket.decide_handshake(
            runtime.gateway, runtime.trust, scope, receive, send, FRONT_DOOR
        )
        if handshake is None:
            return
        connect, view, decision, route, principal = handshake
        settings = runtime.config.websockets
        if self._capacity is None:
            prefix = runtime.config.rate_limits.ipv6_prefix
            self._capacity = websocket.Capacity(settings, prefix)
        try:
            held = self._capacity.take(view.client_ip)
        except BastionError as exc:
            await websocket.deny_handshake(scope, send, refuse(decision, exc))
            return
        scope[PRINCIPAL_KEY] = principal
        state = scope.setdefault("state", {})
        state["principal"] = principal
        state["request_id"] = decision.request_id
        offered = scope.get("subprotocols") or []
        scope["subprotocols"] = websocket.app_protocols(offered)  # the app's own only
        watch = websocket.Watch(runtime.gateway, view, route, principal, settings, FRONT_DOOR)
        try:
            guarded = _GuardedSocket(connect, receive, send, offered)
            await guarded.run(self.app, scope, watch)
        finally:
            self._capacity.give_back(held)


class _GuardedSocket:
    """An app's WebSocket endpoint run under a watch: when it decides, the client gets
    the close frame and the app a ``websocket.disconnect`` (and nothing the app sends
    after reaches the client); the app gets 5 s to finish its own clean-up."""

    def __init__(self, connect: Message, receive: Receive, send: Send, offered: list[str]) -> None:
        self._connect: Message | None = connect  # replayed: the app asks for it too
        self._receive, self._send = receive, send
        self._offered = offered  # the client's subprotocols, bastion's own included
        self._closed = asyncio.Event()
        self._code = websocket.POLICY_VIOLATION

    async def run(self, app: ASGIApp, scope: Scope, watch: websocket.Watch) -> None:
        app_task = asyncio.ensure_future(app(scope, self.receive, self.send))
        watcher = asyncio.ensure_future(watch.closing())
        try:
            await asyncio.wait({app_task, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher.done() and not app_task.done():
                self._code, reason = watcher.result()
                self._closed.set()
                with contextlib.suppress(Exception):  # the client may be gone already
                    await self._send(
                        {"type": "websocket.close", "code": self._code, "reason": reason}
                    )
                await asyncio.wait({app_task}, timeout=5)
        finally:
            watcher.cancel()
            stopped = not app_task.done()
            if stopped:
                app_task.cancel()
            await asyncio.gather(watcher, app_task, return_exceptions=True)
        if not stopped and not app_task.cancelled():
            app_task.result()  # the app's own exception goes to the server, as without us

    async def receive(self) -> Message:
        if self._connect is not None:
            connect, self._connect = self._connect, None
            return connect
        if not self._closed.is_set():
            reader = asyncio.ensure_future(self._receive())
            stopper = asyncio.ensure_future(self._closed.wait())
            try:
                await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
            if reader.done():
                return reader.result()
            reader.cancel()
        return {"type": "websocket.disconnect", "code": self._code}

    async def send(self, message: Message) -> None:
        if self._closed.is_set():
            return  # the connection was closed under the app
        if message["type"] == "websocket.accept":
            chosen = websocket.chosen_protocol(self._offered, message.get("subprotocol"))
            message = {**message, "subprotocol": chosen}
        await self._send(message)


def app_headers(scope: Scope, decision: Decision, runtime: Runtime) -> list[tuple[bytes, bytes]]:
    """The headers the app sees: the client's, but identity headers (bastion's own
    instead, as every upstream gets them) and, unless a trusted proxy sent the request,
    headers only a proxy may set (docs/security.md's trust table)."""
    trusted = remote_of(scope).trusted
    is_identity = runtime.gateway.is_identity_header
    kept = [
        (name, value)
        for name, value in scope["headers"]
        if not is_identity(key := header_key(name.decode("latin-1")))
        and (trusted or key not in PROXY_ONLY)
    ]
    kept += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in decision.upstream_headers]
    return kept


def _with_headers(send: Send, decided: _Decided, runtime: Runtime, secure: bool) -> Send:
    decision = decided.decision

    async def wrapped(message: Any) -> None:
        if message["type"] == "http.response.start":
            decided.observe()  # require() has run, if the endpoint has one
            # A refusal by require() is rendered with the decision's headers already.
            own = decision.headers if decision.allowed else []
            extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in own]
            extra.append((b"x-request-id", decision.request_id.encode()))
            principal = decision.principal  # require() may have authenticated one
            authenticated = (
                principal is not None and principal.credential is not CredentialType.ANONYMOUS
            )
            message["headers"] = runtime.proxy.hardening.apply(
                [*message.get("headers", []), *extra], authenticated=authenticated, secure=secure
            )
        await send(message)

    return wrapped


class BastionHTTPError(Exception):
    """Raised by :func:`require`; FastAPI renders it through :func:`install_error_handler`."""

    def __init__(self, error: BastionError, headers: list[tuple[str, str]]) -> None:
        super().__init__(error.code)
        self.error = error
        self.headers = headers


def require(
    *,
    scopes: Iterable[str] = (),
    roles: Iterable[str] = (),
    methods: Iterable[str | AuthMethod] | None = None,
) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: the endpoint needs these scopes (all), roles (any) and
    credential methods (any; default: every method). Returns the request's
    :class:`Principal`; on a route the middleware leaves public it authenticates the
    request first. Refusals are the decision core's (status, code, challenges) and the
    request's one audit line records them (:meth:`Gateway.require`).

    Raises:
        ValueError: a method that is not an :class:`AuthMethod`.
    """
    need_scopes = frozenset(scopes)
    need_roles = frozenset(roles)
    need_methods = tuple(AuthMethod(m) for m in methods) if methods is not None else None

    async def dependency(request: Request) -> Principal:
        decided = request.scope.get(DECISION_KEY)
        if not isinstance(decided, _Decided):  # no BastionMiddleware: nothing was decided
            raise BastionHTTPError(AuthenticationError("no_principal"), [])
        decision = decided.decision
        await decided.gateway.require(
            decided.view, decision, methods=need_methods, scopes=need_scopes, roles=need_roles
        )
        if not decision.allowed or decision.principal is None:
            error = decision.error or AuthenticationError("no_principal")
            raise BastionHTTPError(error, list(decision.headers))
        request.scope[PRINCIPAL_KEY] = request.state.principal = decision.principal
        return decision.principal

    return dependency


def install_error_handler(app: Any) -> None:
    """Render :class:`BastionHTTPError` as RFC 9457 problem+json in a FastAPI/Starlette app."""

    async def handler(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, BastionHTTPError):  # pragma: no cover - registered for one type
            raise exc
        request_id = str(getattr(request.state, "request_id", "")) or ""
        decision = Decision(
            allowed=False, status=exc.error.status, request_id=request_id, error=exc.error
        )
        response = Response(
            decision.problem_body(),
            status_code=exc.error.status,
            media_type="application/problem+json",
        )
        for name, value in exc.headers:  # one WWW-Authenticate per method: a dict keeps one
            response.headers.append(name, value)
        return response

    app.add_exception_handler(BastionHTTPError, handler)
