"""Two gateway instances on one PostgreSQL and one Redis behave as one (DESIGN.md)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis.asyncio
import yaml

from bastion.gateway.app import GatewayApp
from bastion.gateway.runtime import Runtime
from bastion.oauth.revocation import RevocationMirror, revocation_channel
from bastion.ratelimit._backends import RedisBackend
from tests._deploy import make_deployment
from tests._polling import eventually
from tests._procs import BASTION
from tests._services import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


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


# Failure detectors, not timing assertions: on a loaded two-core machine `bastion serve`
# is up in a few seconds and gone in one; a start-up check or a shutdown stuck on the
# revocation subscriber never is.
UP_WITHIN = 90.0
DOWN_WITHIN = 20.0


def _instance_config(config_file: Path, port: int, n: int) -> Path:
    """Instance ``n`` of the deployment of ``config_file``: its own port and audit file."""
    data = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    data["listen"] = {"host": "127.0.0.1", "port": port}
    data["audit"] = {"path": f"audit-{n}.log"}
    path = config_file.with_name(f"bastion-{n}.yaml")
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        cmd = [*BASTION, "serve", "--config", str(config)]
        return subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True)


def _up(proc: subprocess.Popen[bytes], port: int, deadline: float) -> bool:
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return True
        time.sleep(0.1)
    return False


def _down(proc: subprocess.Popen[bytes], deadline: float) -> bool:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return False
    return True


def test_paired_serve_starts_with_redis_always_come_up_and_go_down(
    tmp_path: Path, pg_database: str, redis_url: str
) -> None:
    # Two instances of one deployment started together, as in a rolling deploy, twice
    # over: each must pass its start-up check, serve, and stop on SIGTERM. The start-up
    # check closes the gateway it built at once; its revocation subscriber used to lose
    # that cancellation and hang the start for good (11 of 20 starts). The many stops
    # at many moments are tests/oauth/test_revocation_fanout.py's, in process.
    d = asyncio.run(
        make_deployment(
            tmp_path / "d", "http://127.0.0.1:9", storage_url=pg_database, redis_url=redis_url
        )
    )
    for pair in range(2):
        ports = [free_port(), free_port()]
        procs = []
        try:
            for n, port in enumerate(ports):
                config = _instance_config(d.config_file, port, n)
                procs.append(_start(config, tmp_path / f"serve-{pair}-{n}.log"))
            deadline = time.monotonic() + UP_WITHIN
            up = [_up(proc, port, deadline) for proc, port in zip(procs, ports, strict=True)]
            assert up == [True, True], f"pair {pair}: an instance did not come up"
            deadline = time.monotonic() + DOWN_WITHIN
            down = [_down(proc, deadline) for proc in procs]
            assert down == [True, True], f"pair {pair}: an instance did not stop on SIGTERM"
        finally:
            for proc in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


def _mirror(rt: Runtime) -> RevocationMirror:
    assert rt.oauth is not None
    return rt.oauth.server.ctx.revocations


async def test_deployments_on_one_redis_share_nothing_but_their_namespace(
    tmp_path: Path, upstream: str, redis_url: str
) -> None:
    # Two deployments (each its own database) on one Redis used to share the revocation
    # channel and the counters' prefix: one's revocations reached the other, and their
    # rate limits counted together. A db number in the URL does not help: pub/sub
    # ignores it. redis_namespace separates them; an instance with the same one joins.
    mine, theirs = f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"
    oauth = {"revocation_sync_seconds": 300}  # only Redis carries news between them
    shared = {"redis_url": redis_url, "oauth": oauth}
    deployments = [
        await make_deployment(tmp_path / name, upstream, redis_namespace=namespace, **shared)
        for name, namespace in (("one", mine), ("twin", mine), ("other", theirs))
    ]
    one, twin, other = [await Runtime.start(d.config) for d in deployments]
    publisher = redis.asyncio.Redis.from_url(redis_url)
    try:
        for rt in (one, twin, other):
            await asyncio.wait_for(_mirror(rt).subscribed.wait(), 15)
        exp = int(time.time()) + 600
        await _mirror(one).revoke("revoked-by-one", exp)
        assert await eventually(lambda: twin.revocations.is_revoked("revoked-by-one"), 15)
        # Redis delivers one subscriber's messages in order: once the other deployment
        # has a message published after one's, it would have had one's.
        await publisher.publish(revocation_channel(theirs), f"later {exp}")
        assert await eventually(lambda: other.revocations.is_revoked("later"), 15)
        assert not other.revocations.is_revoked("revoked-by-one")
        assert not one.revocations.is_revoked("later")

        rate, key = "2/minute", "198.51.100.7"
        assert [(await one.limiter.hit("ip", rate, key)).allowed for _ in range(2)] == [True] * 2
        assert not (await twin.limiter.hit("ip", rate, key)).allowed  # one budget for both
        assert (await other.limiter.hit("ip", rate, key)).allowed  # a budget of its own
    finally:
        for rt in (one, other):
            backend = rt.limiter.backend
            assert isinstance(backend, RedisBackend)
            await backend.clear_namespace()
        for rt in (one, twin, other):
            await rt.aclose()
        await publisher.aclose()
