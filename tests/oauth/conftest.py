from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bastion.gateway.app import GatewayApp
from bastion.gateway.runtime import Runtime
from tests._deploy import Deployment
from tests.oauth._helpers import Clients


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
