from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import HealthCheck, settings

from bastion.demo import upstream_app
from bastion.gateway.app import GatewayApp
from bastion.gateway.runtime import Runtime
from tests import _services
from tests._deploy import Deployment, make_deployment

# The machine is shared and its load varies: property tests judge correctness, never speed,
# so neither a slow example nor slow input generation fails them.
settings.register_profile("bastion", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("bastion")


@pytest.fixture(scope="session")
def pg_url() -> str:
    return _services.ensure_postgres()


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _services.ensure_redis()


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    """The demo echo API, a real aiohttp server on a free loopback port."""
    runner = web.AppRunner(upstream_app(), access_log=None)
    await runner.setup()
    port = _services.free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def deployment(tmp_path: Path, upstream: str) -> Deployment:
    """A complete deployment (config, key, migrated SQLite, users, keys, an issuer)."""
    return await make_deployment(tmp_path / "d", upstream)


@pytest.fixture
async def runtime(deployment: Deployment) -> AsyncIterator[Runtime]:
    rt = await Runtime.start(deployment.config)
    yield rt
    await rt.aclose()


@pytest.fixture
def app(deployment: Deployment, runtime: Runtime) -> GatewayApp:
    return GatewayApp(deployment.config, runtime)
