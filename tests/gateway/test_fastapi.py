"""The embedded front door in a FastAPI app: middleware + require() dependency."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import StreamingResponse

from bastion.gateway.middleware import BastionMiddleware, install_error_handler, require
from bastion.gateway.runtime import Runtime
from bastion.model import Principal
from tests._deploy import PASSWORD, Deployment, make_deployment
from tests.gateway.test_require import audit_lines, audited


def make_app(runtime: Runtime) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BastionMiddleware, runtime=runtime)
    install_error_handler(app)

    @app.get("/api/me")
    def me(principal: Principal = Depends(require())) -> dict[str, str]:  # noqa: B008
        return {"subject": principal.subject, "credential": principal.credential.value}

    @app.get("/api/orders")
    def orders(
        principal: Principal = Depends(require(scopes=["orders:read"], methods=["jwt"])),  # noqa: B008
    ) -> dict[str, str]:
        return {"subject": principal.subject}

    @app.get("/api/admin/ops")
    def ops(principal: Principal = Depends(require(roles=["admin"]))) -> dict[str, str]:  # noqa: B008
        return {"subject": principal.subject}

    return app


async def test_require_checks_scopes_methods_and_roles(
    runtime: Runtime, deployment: Deployment
) -> None:
    transport = httpx.ASGITransport(app=make_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        key = {"X-API-Key": deployment.api_key}
        me = await client.get("/api/me", headers=key)
        assert me.json() == {"subject": "alice", "credential": "api_key"}
        # the middleware refuses before the app runs
        assert (await client.get("/api/me")).status_code == 401
        # API key lacks the method and the scope
        wrong_method = await client.get("/api/orders", headers=key)
        assert wrong_method.status_code == 401
        assert wrong_method.headers["content-type"] == "application/problem+json"
        jwt_no_scope = {"Authorization": f"Bearer {deployment.jwt(scope='read')}"}
        no_scope = await client.get("/api/orders", headers=jwt_no_scope)
        assert no_scope.status_code == 403
        assert no_scope.json()["code"] == "insufficient_scope"
        assert 'scope="orders:read"' in no_scope.headers["www-authenticate"]
        jwt_scope = {"Authorization": f"Bearer {deployment.jwt(scope='orders:read')}"}
        assert (await client.get("/api/orders", headers=jwt_scope)).status_code == 200
        basic = "Basic " + base64.b64encode(f"root:{PASSWORD}".encode()).decode()
        admin = await client.get("/api/admin/ops", headers={"Authorization": basic})
        assert admin.status_code == 200
        assert admin.headers["x-request-id"]


async def test_the_apps_request_bodies_are_bounded_in_size_and_time(
    tmp_path: Path, upstream: str
) -> None:
    # The middleware hands the app a body that stops at max_body_bytes (413) and at a
    # stall of body_idle_seconds (408), chunked bodies included; before, a chunked body
    # went to the app whole, however large, and a stalled one held it for good.
    limits = {"max_body_bytes": 1024, "body_idle_seconds": 0.5}
    d = await make_deployment(tmp_path / "d", upstream, limits=limits)
    runtime = await Runtime.start(d.config)
    app = FastAPI()
    app.add_middleware(BastionMiddleware, runtime=runtime)

    @app.post("/api/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"read": len(await request.body())}

    @app.get("/api/slow")
    def slow() -> StreamingResponse:
        def pieces() -> Iterator[bytes]:
            for _ in range(3):
                time.sleep(0.4)  # past body_idle_seconds in all: a response is not a body
                yield b"x"

        return StreamingResponse(pieces())

    async def chunks(n: int, stall: float = 0) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield b"a" * 256
        await asyncio.sleep(stall)

    key = {"X-API-Key": d.api_key}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            fits = await client.post("/api/echo", content=chunks(4), headers=key)
            assert fits.json() == {"read": 1024}
            large = await client.post("/api/echo", content=chunks(5), headers=key)
            assert large.status_code == 413
            assert large.headers["content-type"] == "application/problem+json"
            stalled = await client.post("/api/echo", content=chunks(1, stall=5), headers=key)
            assert stalled.status_code == 408
            slow = await client.get("/api/slow", headers=key)
            assert (slow.status_code, slow.text) == (200, "xxx")
        # The audit line says what the client got (before: allow, 200 for both).
        lines = audit_lines(runtime, d)
        assert audited(lines, large)[:2] == ("deny", 413)
        assert audited(lines, stalled)[:2] == ("deny", 408)
        assert audited(lines, fits)[:2] == ("allow", 200)
    finally:
        await runtime.aclose()
