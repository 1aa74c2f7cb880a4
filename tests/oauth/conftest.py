from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from bastion.demo import upstream_app
from bastion.gateway.app import GatewayApp
from bastion.gateway.runtime import Runtime
from tests._deploy import Deployment, make_deployment
from tests._services import free_port
from tests.oauth._helpers import Clients


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    runner = web.AppRunner(upstream_app(), access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def deployment(tmp_path: Path, upstream: str) -> Deployment:
    return await make_deployment(tmp_path / "d", upstream)


@pytest.fixture
async def runtime(deployment: Deployment) -> AsyncIterator[Runtime]:
    rt = await Runtime.start(deployment.config)
    yield rt
    await rt.aclose()


@pytest.fixture
def app(deployment: Deployment, runtime: Runtime) -> GatewayApp:
    return GatewayApp(deployment.config, runtime)


@pytest.fixture
def issuer(deployment: Deployment) -> str:
    return deployment.config.issuer_url


@pytest.fixture
async def http(app: GatewayApp, issuer: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=issuer) as client:
        yield client


@pytest.fixture
def clients(runtime: Runtime, app: GatewayApp, issuer: str) -> Clients:
    assert runtime.oauth is not None
    return Clients(runtime.oauth.server, app, issuer)


def form(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
