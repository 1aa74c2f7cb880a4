"""Two gateway instances on one PostgreSQL and one Redis behave as one (DESIGN.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bastion.gateway.app import GatewayApp
from bastion.gateway.runtime import Runtime
from tests._deploy import make_deployment
from tests.store._db import postgres_database

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[str]:
    with postgres_database(pg_url) as url:
        yield url


async def test_two_instances_share_storage_and_rate_limits(
    tmp_path: Path, upstream: str, pg_database: str, redis_url: str
) -> None:
    route = f"limited-{uuid.uuid4().hex[:8]}"  # fresh Redis keys for every run
    d = await make_deployment(
        tmp_path / "d", upstream, storage_url=pg_database, redis_url=redis_url
    )
    data = d.config.model_dump(mode="json", exclude={"base_dir"})
    data["routes"].insert(
        0,
        {
            "name": route,
            "path_prefix": "/limited",
            "upstream": upstream,
            "auth": ["api_key", "jwt"],
            "rate_limit": "4/minute",
        },
    )
    from bastion.config import parse_config

    config = parse_config(data, base_dir=d.folder)
    first, second = await Runtime.start(config), await Runtime.start(config)
    try:
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=GatewayApp(config, rt)), base_url="http://gw"
            )
            for rt in (first, second)
        ]
        headers = {"X-API-Key": d.api_key}
        statuses = []
        for i in range(5):
            response = await clients[i % 2].get("/limited/x", headers=headers)
            statuses.append(response.status_code)
        assert statuses == [200, 200, 200, 200, 429]
        # The key was issued into PostgreSQL once; both instances verify it.
        for client in clients:
            assert (await client.get("/api/x", headers=headers)).status_code == 200
            jwt_headers = {"Authorization": f"Bearer {d.jwt()}"}
            assert (await client.get("/api/x", headers=jwt_headers)).status_code == 200
        ready = await clients[0].get("/readyz")
        assert ready.json()["checks"] == {"database": True, "audit": True, "redis": True}
        for client in clients:
            await client.aclose()
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_down_fails_closed(tmp_path: Path, upstream: str) -> None:
    from tests._services import free_port

    d = await make_deployment(
        tmp_path / "d", upstream, redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    rt = await Runtime.start(d.config)
    try:
        transport = httpx.ASGITransport(app=GatewayApp(d.config, rt))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            response = await client.get("/api/x", headers={"X-API-Key": d.api_key})
            assert response.status_code == 503
            assert response.json()["code"] == "temporarily_unavailable"
            ready = await client.get("/readyz")
            assert ready.status_code == 503
    finally:
        await rt.aclose()


async def test_an_accounts_good_address_is_spared_on_every_instance(
    tmp_path: Path, upstream: str, pg_database: str, redis_url: str
) -> None:
    # The failed-credential block of an account spares the addresses it authenticated
    # from; with shared counters the block is everywhere, so the sparing must be too
    # (before, only the instance that saw the owner spared it: the others locked it out).
    rates = {"failed_auth_per_account": "3/minute", "failed_auth_per_ip": "100/minute"}
    d = await make_deployment(
        tmp_path / "d", upstream, storage_url=pg_database, redis_url=redis_url, rate_limits=rates
    )
    first, second = await Runtime.start(d.config), await Runtime.start(d.config)
    try:
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=GatewayApp(d.config, rt)), base_url="http://gw"
            )
            for rt in (first, second)
        ]

        async def call(client: httpx.AsyncClient, ip: str, key: str) -> int:
            headers = {"X-API-Key": key, "X-Forwarded-For": ip}
            return (await client.get("/api/x", headers=headers)).status_code

        key = d.api_key
        wrong = key[:-10] + ("a" if key[-10] != "a" else "b") + key[-9:]  # same key id
        assert await call(clients[0], "198.51.100.1", key) == 200  # the owner, on the first
        attacks = [await call(clients[1], "203.0.113.66", wrong) for _ in range(4)]
        assert attacks == [401, 401, 401, 429]  # the key's budget is spent, everywhere
        assert await call(clients[1], "198.51.100.1", key) == 200  # spared on the second too
        assert await call(clients[0], "198.51.100.99", key) == 429  # not from a new address
        assert await call(clients[1], "198.51.100.99", key) == 429
        for client in clients:
            await client.aclose()
    finally:
        await first.aclose()
        await second.aclose()
