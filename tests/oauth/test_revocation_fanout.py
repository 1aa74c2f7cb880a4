"""The revocation mirror on a real Redis: it always stops, whenever it is stopped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.oauth._store import GrantStore
from bastion.oauth.revocation import RevocationMirror
from bastion.store import async_engine, migrate
from bastion.tokens import InMemoryRevocations

pytestmark = pytest.mark.redis

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
