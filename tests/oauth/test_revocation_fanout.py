"""The revocation mirror: it always stops, whenever it is stopped (on a real Redis), and
what Redis did not take while out is published when it returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.oauth._store import GrantStore
from bastion.oauth.revocation import RevocationMirror
from bastion.store import async_engine, migrate
from bastion.tokens import InMemoryRevocations

# A failure detector, not a timing assertion: a stopped mirror ends in well under a
# second; one stuck on its subscriber never does.
STOPPED_WITHIN = 10.0


@pytest.fixture
async def grants(tmp_path: Path) -> AsyncIterator[GrantStore]:
    url = f"sqlite:///{tmp_path / 'bastion.db'}"
    await migrate(url)
    engine = async_engine(url)
    yield GrantStore(engine, b"k" * 32)
    await engine.dispose()


@pytest.mark.redis
async def test_the_mirror_stops_whenever_it_is_stopped(grants: GrantStore, redis_url: str) -> None:
    # The start-up check builds the gateway and closes it at once. Cancelling the
    # subscriber while redis-py was between reading and handling its subscription lost
    # the cancellation: the close waited for good (11 of 20 paired `bastion serve`
    # starts hung). Stopped at many points of its start, it must end every time.
    for step in range(40):
        mirror = RevocationMirror(grants, InMemoryRevocations(), redis_url=redis_url)
        await mirror.start()
        await asyncio.sleep(step * 0.0005)
        closing = asyncio.ensure_future(mirror.aclose())
        done, _ = await asyncio.wait({closing}, timeout=STOPPED_WITHIN)
        assert done, f"the mirror did not stop (stopped {step * 0.5} ms after its start)"
        assert all(not task.get_name().startswith("bastion-revocation") or task.done()
                   for task in asyncio.all_tasks())  # fmt: skip


class _OutageRedis:
    """Stands in for the publishing client (unit test): refuses while ``up`` is False."""

    def __init__(self) -> None:
        self.up = False
        self.attempts = 0
        self.published: list[str] = []

    async def publish(self, channel: str, message: str) -> int:
        self.attempts += 1
        if not self.up:
            raise ConnectionError("Redis is out")
        self.published.append(message)
        return 1

    async def aclose(self) -> None:
        return None


async def test_what_redis_did_not_take_is_published_when_it_returns(grants: GrantStore) -> None:
    # A revocation recorded while Redis is out reaches the instances whose subscription
    # never dropped (only this one lost Redis) once this one's subscription is back; the
    # requests meanwhile do not each wait on a Redis known to be out.
    mirror = RevocationMirror(grants, InMemoryRevocations())
    redis = _OutageRedis()
    mirror._redis = redis
    await mirror.applied([("one", 2_000_000_000)])
    await mirror.applied([("two", 2_000_000_000), ("three", 2_000_000_000)])
    assert redis.attempts == 1
    assert redis.published == []
    assert all(mirror.local.is_revoked(j) for j in ("one", "two", "three"))  # here at once
    redis.up = True
    await mirror._resubscribed()
    assert redis.published == ["one 2000000000", "two 2000000000", "three 2000000000"]
    await mirror.applied([("four", 2_000_000_000)])
    assert redis.published[-1] == "four 2000000000"
