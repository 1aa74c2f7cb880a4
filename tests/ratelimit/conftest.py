from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace

import limits.storage.memory
import pytest
import redis.asyncio

from bastion.config import RateLimitConfig
from bastion.ratelimit import RateLimiter
from bastion.ratelimit._backends import RedisBackend

STRATEGIES = ["fixed-window", "moving-window", "sliding-window-counter"]


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """One fake clock for bastion and for limits' memory storage (which reads time.time)."""
    fake = FakeClock()
    monkeypatch.setattr(limits.storage.memory, "time", SimpleNamespace(time=fake))
    return fake


@pytest.fixture
async def make_memory(clock: FakeClock) -> AsyncIterator[Callable[..., RateLimiter]]:
    made: list[RateLimiter] = []

    def make(**cfg: str) -> RateLimiter:
        limiter = RateLimiter.from_config(RateLimitConfig(**cfg), None, clock=clock)  # type: ignore[arg-type]
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()


@pytest.fixture
def namespace() -> str:
    return f"bastion-test:rl:{uuid.uuid4().hex}"


@pytest.fixture
async def make_redis(redis_url: str, namespace: str) -> AsyncIterator[Callable[..., RateLimiter]]:
    """Limiters on the real Redis, all in one per-test namespace that is deleted after."""
    made: list[RateLimiter] = []

    def make(**cfg: str) -> RateLimiter:
        limiter = RateLimiter.from_config(RateLimitConfig(**cfg), redis_url, key_prefix=namespace)  # type: ignore[arg-type]
        made.append(limiter)
        return limiter

    yield make
    if made:
        backend = made[0].backend
        assert isinstance(backend, RedisBackend)
        await backend.clear_namespace()
    for limiter in made:
        await limiter.aclose()
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert [k async for k in client.scan_iter(match=f"{namespace}*")] == []
    finally:
        await client.aclose()
