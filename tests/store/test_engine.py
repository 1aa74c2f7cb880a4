from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from bastion.errors import ConfigError
from bastion.store import async_engine, async_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///bastion.db", "sqlite+aiosqlite:///bastion.db"),
        ("sqlite:////abs/b.db", "sqlite+aiosqlite:////abs/b.db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_async_url(url: str, expected: str) -> None:
    assert async_url(url) == expected


def test_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        async_url("mysql://u@h/db")


async def test_memory_sqlite_shares_one_connection() -> None:
    engine = async_engine("sqlite:///:memory:")
    assert engine.pool.__class__.__name__ == "StaticPool"
    await engine.dispose()


async def test_postgres_pool_is_bounded() -> None:
    engine = async_engine("postgresql://u@127.0.0.1/db")
    assert engine.pool.size() == 10  # type: ignore[attr-defined]
    await engine.dispose()


@pytest.mark.postgres
async def test_a_statement_that_waits_too_long_is_unavailable(pg_database: str) -> None:
    # Another session holds the api_keys table (a migration, VACUUM FULL...) or the
    # database hangs: a lookup used to wait for as long as that lasted; now it fails
    # (503 for the request) after the storage's query timeout.
    from sqlalchemy import text

    from bastion.errors import Unavailable
    from bastion.store import ApiKeyStore

    holder = async_engine(pg_database)
    engine = async_engine(pg_database, query_timeout=0.5)
    try:
        async with holder.connect() as locked:
            await locked.execute(text("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE"))
            with pytest.raises(Unavailable, match="database error"):
                await asyncio.wait_for(ApiKeyStore(engine).get_by_key_id("aaaaaaaaaaaa"), 20)
            await locked.rollback()
        # The lock gone, the same engine answers again.
        assert await ApiKeyStore(engine).get_by_key_id("aaaaaaaaaaaa") is None
    finally:
        await engine.dispose()
        await holder.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("pooled", [False, True], ids=["connecting", "pooled"])
async def test_a_hung_database_fails_each_use_within_the_bound(
    pg_database: str, pooled: bool
) -> None:
    # The bound is on the whole use of a connection. Per step it was not: connecting to
    # a server that accepts and never answers waited the fixed 10 s connect timeout
    # whatever the bound, and a pooled connection's failed pre-ping added SQLAlchemy's
    # 2 s graceful close (12 s under a 10 s bound for the first request of each kind).
    from sqlalchemy.engine import make_url

    from bastion.errors import Unavailable
    from bastion.store import ApiKeyStore
    from tests._stall import StallingProxy

    proxy = StallingProxy(make_url(pg_database).port or 5432)
    url = make_url(pg_database).set(port=await proxy.start())
    engine = async_engine(url.render_as_string(hide_password=False), query_timeout=1.0)
    try:
        if pooled:
            assert await ApiKeyStore(engine).get_by_key_id("aaaaaaaaaaaa") is None
        proxy.stall()
        started = time.monotonic()
        with pytest.raises(Unavailable, match="database error"):
            await asyncio.wait_for(ApiKeyStore(engine).get_by_key_id("aaaaaaaaaaaa"), 30)
        assert time.monotonic() - started < 1.5  # 1 s and the time to say so
        proxy.resume()
        assert await ApiKeyStore(engine).get_by_key_id("aaaaaaaaaaaa") is None  # back
    finally:
        await engine.dispose()
        await proxy.aclose()


async def _open(url: str) -> None:
    engine = async_engine(url)
    try:
        async with engine.connect():
            pass
    finally:
        await engine.dispose()


def test_a_database_that_cannot_be_opened_leaves_no_thread_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiosqlite stops its thread after a failed connect without waiting for it; the
    # thread then posted to the event loop that asyncio.run had closed meanwhile, and
    # "RuntimeError: Event loop is closed" was printed under the one-line reason (in the
    # start-up check of `bastion serve` and of a SIGHUP reload, and in every command).
    # It lost that race about 9 times in 10: ten tries.
    caught: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: caught.append(args.exc_value))
    url = f"sqlite:///{tmp_path}/missing/bastion.db"
    for _ in range(10):
        before = set(threading.enumerate())
        with pytest.raises(OperationalError, match="unable to open database file"):
            asyncio.run(_open(url))
        for thread in set(threading.enumerate()) - before:
            thread.join(5)
            assert not thread.is_alive()
    assert caught == []
