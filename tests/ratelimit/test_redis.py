"""Against the real Redis (db 15), each test in its own key namespace."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bastion.config import RateLimitConfig
from bastion.errors import Unavailable
from bastion.ratelimit import FAILED_ACCOUNT_POLICY, RateLimiter
from tests._services import free_port
from tests.ratelimit.conftest import STRATEGIES

pytestmark = pytest.mark.redis

Make = Callable[..., RateLimiter]


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_allows_up_to_the_limit_then_denies(make_redis: Make, strategy: str) -> None:
    limiter = make_redis(strategy=strategy)
    results = [await limiter.hit("ip", "3/minute", "203.0.113.9") for _ in range(4)]

    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    first, denied = results[0], results[3]
    assert 1 <= first.reset_after <= 60
    assert first.headers() == [
        ("RateLimit-Policy", '"ip";q=3;w=60'),
        ("RateLimit", f'"ip";r=2;t={first.reset_after}'),
    ]
    assert 1 <= denied.reset_after <= 61
    assert denied.headers() == [
        ("RateLimit-Policy", '"ip";q=3;w=60'),
        ("RateLimit", f'"ip";r=0;t={denied.reset_after}'),
        ("Retry-After", str(denied.reset_after)),
    ]


async def test_a_fixed_window_denial_names_the_window_end(make_redis: Make) -> None:
    limiter = make_redis(strategy="fixed-window")
    await limiter.hit("ip", "1/minute", "k")
    denied = await limiter.hit("ip", "1/minute", "k")
    # Redis TTLs are whole seconds: 59 or 60 s left, plus one to be strictly after.
    assert denied.reset_after in (60, 61)


async def test_two_instances_sharing_redis_act_as_one(make_redis: Make) -> None:
    first, second = make_redis(), make_redis()
    assert (await first.hit("principal", "4/minute", "alice")).remaining == 3
    assert (await second.hit("principal", "4/minute", "alice")).remaining == 2
    assert (await first.hit("principal", "4/minute", "alice")).remaining == 1
    assert (await second.hit("principal", "4/minute", "alice")).remaining == 0
    assert not (await first.hit("principal", "4/minute", "alice")).allowed
    assert not (await second.hit("principal", "4/minute", "alice")).allowed
    assert (await second.hit("principal", "4/minute", "bob")).allowed


async def test_concurrent_hits_never_exceed_the_limit(make_redis: Make) -> None:
    first, second = make_redis(), make_redis()
    results = await asyncio.gather(
        *(limiter.hit("ip", "10/minute", "198.51.100.1") for limiter in (first, second) * 15)
    )
    assert sum(r.allowed for r in results) == 10


async def test_a_real_one_second_window_resets(make_redis: Make) -> None:
    limiter = make_redis(strategy="fixed-window")
    assert (await limiter.hit("ip", "2/second", "k")).allowed
    assert (await limiter.hit("ip", "2/second", "k")).allowed
    denied = await limiter.hit("ip", "2/second", "k")
    assert not denied.allowed
    assert denied.retry_after >= denied.reset_after >= 1
    await asyncio.sleep(1.05)
    assert (await limiter.hit("ip", "2/second", "k")).allowed


async def test_failure_throttling_is_shared_between_instances(make_redis: Make) -> None:
    cfg = {"failed_auth_per_account": "2/minute", "failed_auth_per_ip": "5/minute"}
    first, second = make_redis(**cfg), make_redis(**cfg)
    await first.record_failure(account="alice", ip="192.0.2.1")
    assert await second.failures_blocked(account="alice", ip="192.0.2.2") is None
    await second.record_failure(account="alice", ip="192.0.2.2")

    blocked = await first.failures_blocked(account="alice", ip="192.0.2.3")
    assert blocked is not None
    assert blocked.policy == FAILED_ACCOUNT_POLICY
    assert await first.failures_blocked(account="alicf", ip="192.0.2.3") is None


async def test_failure_throttling_per_ip(make_redis: Make) -> None:
    limiter = make_redis(failed_auth_per_account="50/minute", failed_auth_per_ip="2/minute")
    await limiter.record_failure(account="a", ip="192.0.2.50")
    await limiter.record_failure(account="b", ip="192.0.2.50")
    blocked = await limiter.failures_blocked(account="c", ip="192.0.2.50")
    assert blocked is not None
    assert blocked.retry_after >= 1
    assert await limiter.failures_blocked(account="c", ip="192.0.2.51") is None


async def test_redis_down_fails_closed() -> None:
    limiter = RateLimiter.from_config(
        RateLimitConfig(), f"redis://127.0.0.1:{free_port()}/15", redis_timeout=0.2
    )
    try:
        with pytest.raises(Unavailable) as caught:
            await limiter.hit("ip", "100/minute", "203.0.113.9")
        assert caught.value.status == 503
        with pytest.raises(Unavailable):
            await limiter.failures_blocked(account="alice", ip="203.0.113.9")
        with pytest.raises(Unavailable):
            await limiter.record_failure(account="alice", ip="203.0.113.9")
    finally:
        await limiter.aclose()


async def test_a_redis_that_never_answers_fails_closed_in_time() -> None:
    # Worse than a refused connection: a peer that accepts and then says nothing (a hung
    # Redis, a black-holed network path). Every call still ends, with 503, in time.
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limiter = RateLimiter.from_config(
        RateLimitConfig(), f"redis://127.0.0.1:{port}/15", redis_timeout=0.2
    )
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(Unavailable):
            await asyncio.wait_for(limiter.hit("ip", "100/minute", "203.0.113.9"), 10)
        with pytest.raises(Unavailable):
            await asyncio.wait_for(limiter.failures_blocked(account="a", ip="203.0.113.9"), 10)
        assert loop.time() - started < 5
        assert accepted  # it did connect: the bound is on the answer, not the connection
    finally:
        await limiter.aclose()
        server.close()
        for writer in accepted:
            writer.close()
