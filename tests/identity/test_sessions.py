"""Session timeouts (idle and absolute), rotation and per-subject listing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.oauth._session import SessionStore
from bastion.store import async_engine, migrate


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[tuple[SessionStore, Clock]]:
    url = f"sqlite:///{tmp_path / 's.db'}"
    await migrate(url)
    clock = Clock()
    engine = async_engine(url)
    yield SessionStore(engine, ttl=3600, idle=600, clock=clock), clock
    await engine.dispose()


async def test_idle_timeout(store: tuple[SessionStore, Clock]) -> None:
    sessions, clock = store
    s = await sessions.create(client_ip="127.0.0.1", user_agent="ua")
    clock.now += 590
    assert await sessions.load(s.cookie) is not None  # touched: idle restarts
    clock.now += 590
    assert await sessions.load(s.cookie) is not None
    clock.now += 601
    assert await sessions.load(s.cookie) is None


async def test_absolute_timeout_despite_activity(store: tuple[SessionStore, Clock]) -> None:
    sessions, clock = store
    s = await sessions.create()
    for _ in range(6):
        clock.now += 500
        assert await sessions.load(s.cookie) is not None
    clock.now += 700  # 3700 s after creation
    assert await sessions.load(s.cookie) is None


async def test_login_rotates_and_lists_by_subject(store: tuple[SessionStore, Clock]) -> None:
    sessions, _ = store
    anon = await sessions.create()
    anon.data["login"] = {"subject": "alice"}
    anon.add_pending({"kind": "authorize"})
    one = await sessions.login(anon, subject="alice", acr="a", amr=("pwd",), client_ip="10.0.0.1")
    assert await sessions.load(anon.cookie) is None
    assert one.cookie != anon.cookie
    assert "login" not in one.data  # partial login state is not carried over
    assert one.pending()
    two = await sessions.login(await sessions.create(), subject="alice", acr="a", amr=("pwd",))
    listed = await sessions.of_subject("alice")
    assert {s.id_hash for s in listed} == {one.id_hash, two.id_hash}
    assert len({s.public_id for s in listed}) == 2
    assert all(s.public_id not in (s.id_hash, s.cookie) for s in listed)
    assert await sessions.delete_of_subject("alice", keep=one.id_hash) == 1
    assert [s.id_hash for s in await sessions.of_subject("alice")] == [one.id_hash]
