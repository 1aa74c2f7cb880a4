"""WebSocket endpoints of an app that embeds bastion (BastionMiddleware), served by a
real uvicorn in the test's loop and reached by aiohttp's client: the handshake is
decided before the app runs, the app sees the principal, and when the credential is
revoked or expires the client gets 1008 and the app a disconnect."""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from bastion.gateway.middleware import BastionMiddleware
from bastion.gateway.runtime import Runtime
from tests._deploy import Deployment, make_deployment, revoke_keys
from tests._polling import eventually
from tests._ws import assert_refused
from tests.gateway._uvicorn import serving


def make_app(runtime: Runtime, disconnects: list[int]) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BastionMiddleware, runtime=runtime)

    @app.websocket("/live/feed")
    async def feed(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                if text == "whoami":
                    await websocket.send_text(websocket.state.principal.subject)
                elif text == "protocols":  # what the app was offered
                    await websocket.send_text(",".join(websocket.scope["subprotocols"]))
                else:
                    await websocket.send_text(text)
        except WebSocketDisconnect as gone:
            disconnects.append(gone.code)

    @app.websocket("/plain/feed")
    async def plain(websocket: WebSocket) -> None:  # pragma: no cover - never reached
        await websocket.accept()

    return app


def ws_serving(app: FastAPI) -> AbstractAsyncContextManager[str]:
    return serving(app, "ws")


async def deployment(tmp_path: Path, upstream: str, **overrides: Any) -> Deployment:
    routes = [
        {"name": "live", "path_prefix": "/live", "auth": ["api_key", "jwt"], "websocket": True},
        {"name": "plain", "path_prefix": "/plain", "auth": ["api_key"]},
    ]
    return await make_deployment(tmp_path / "d", upstream, routes=routes, **overrides)


async def test_the_handshake_is_decided_before_the_app_runs(tmp_path: Path, upstream: str) -> None:
    d = await deployment(tmp_path, upstream)
    runtime = await Runtime.start(d.config)
    disconnects: list[int] = []
    try:
        async with ws_serving(make_app(runtime, disconnects)) as base, aiohttp.ClientSession() as c:
            key = {"X-API-Key": d.api_key}
            async with c.ws_connect(base + "/live/feed", headers=key) as ws:
                await ws.send_str("whoami")
                assert await ws.receive_str(timeout=5) == "alice"
                await ws.close(code=4003)
            # /plain did not opt in to WebSockets.
            await assert_refused(c, base, [("/live/feed", {}, 401), ("/plain/feed", key, 403)])
            await eventually(lambda: bool(disconnects))
    finally:
        await runtime.aclose()
    assert disconnects == [4003]


async def test_a_revoked_key_or_an_expired_token_closes_the_apps_socket(
    tmp_path: Path, upstream: str
) -> None:
    d = await deployment(
        tmp_path, upstream, websockets={"recheck_seconds": 1}, api_keys={"cache_seconds": 0}
    )
    runtime = await Runtime.start(d.config)
    disconnects: list[int] = []
    try:
        async with ws_serving(make_app(runtime, disconnects)) as base, aiohttp.ClientSession() as c:
            async with c.ws_connect(base + "/live/feed", headers={"X-API-Key": d.api_key}) as ws:
                await ws.send_str("one")
                assert await ws.receive_str(timeout=5) == "one"
                await revoke_keys(d, subject="alice")
                message = await ws.receive(timeout=10)
                assert message.type is aiohttp.WSMsgType.CLOSE
                assert message.data == 1008
            token = d.jwt(exp=int(time.time()) + 2)
            bearer = {"Authorization": f"Bearer {token}"}
            async with c.ws_connect(base + "/live/feed", headers=bearer) as ws:
                started = time.monotonic()
                message = await ws.receive(timeout=10)
                assert message.type is aiohttp.WSMsgType.CLOSE
                assert message.data == 1008
                assert message.extra == "invalid_token"
                assert time.monotonic() - started < 4
            await eventually(lambda: len(disconnects) >= 2)
    finally:
        await runtime.aclose()
    assert disconnects == [1008, 1008]  # the app was told, each time


async def test_a_browser_token_offered_as_a_subprotocol_reaches_no_app(
    tmp_path: Path, upstream: str
) -> None:
    d = await deployment(tmp_path, upstream)
    runtime = await Runtime.start(d.config)
    try:
        async with ws_serving(make_app(runtime, [])) as base, aiohttp.ClientSession() as c:
            offered = ("bastion", f"bastion.bearer.{d.jwt()}", "feed.v1")
            async with c.ws_connect(base + "/live/feed", protocols=offered) as ws:
                assert ws.protocol == "bastion"  # the app chose none
                await ws.send_str("whoami")
                assert await ws.receive_str(timeout=5) == "alice"
                await ws.send_str("protocols")
                assert await ws.receive_str(timeout=5) == "feed.v1"
    finally:
        await runtime.aclose()
