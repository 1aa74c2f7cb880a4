"""Async SQLAlchemy engines from bastion's storage URLs.

``sqlite:///path`` runs on aiosqlite with WAL (readers never wait for the writer) and a
busy timeout (a second writer waits instead of failing); ``postgresql://`` runs on asyncpg
with a bound on each use of a connection (:mod:`bastion.store._bounded`), so a database
that hangs, or a table locked by someone else, makes a request fail (503) instead of
wait for good.
"""

from __future__ import annotations

from functools import partial
from threading import Thread
from typing import Any, cast

import aiosqlite
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool

from bastion.errors import ConfigError
from bastion.store._bounded import BoundedEngine

SQLITE_BUSY_TIMEOUT_MS = 5000
QUERY_TIMEOUT_SECONDS = 10.0  # the default of storage.query_timeout_seconds


def async_url(url: str) -> str:
    """The SQLAlchemy async driver URL for a bastion storage URL."""
    if url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        return url
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    raise ConfigError("storage URL must start with sqlite:// or postgresql://")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # WAL makes NORMAL durable against application crashes; only power loss can
        # lose the last commits, which is the documented SQLite trade-off.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


async def _connect_sqlite(*args: Any, **kwargs: Any) -> aiosqlite.Connection:
    """aiosqlite's connect, waiting on failure for the thread it leaves behind.

    After a failed connect aiosqlite stops its thread without waiting for it, and the
    thread's last act posts to the event loop: when the failure ends the program
    (asyncio.run closes the loop) the post lost the race about 9 times in 10, printing
    "RuntimeError: Event loop is closed" from the thread under the one-line reason.
    """
    connection = aiosqlite.connect(*args, **kwargs)
    # aiosqlite < 0.22: the connection is the thread; SQLAlchemy makes it a daemon too.
    thread = cast(Thread, getattr(connection, "_thread", connection))
    thread.daemon = True
    try:
        return await connection
    except BaseException:
        # Its one job left is that post, and the loop, blocked here, is still open.
        thread.join(timeout=5)
        raise


def async_engine(
    url: str, *, query_timeout: float | None = QUERY_TIMEOUT_SECONDS, **kwargs: Any
) -> AsyncEngine:
    """An :class:`AsyncEngine` for ``sqlite://`` or ``postgresql://`` URLs.

    Args:
        url: the storage URL (``Config.database_url``).
        query_timeout: PostgreSQL: seconds one use of a connection may take, from asking
            the pool for it (connecting included) to giving it back (None: no bound, for
            migrations); SQLite's writers wait ``SQLITE_BUSY_TIMEOUT_MS`` instead.
        kwargs: passed on to :func:`create_async_engine` (overrides the defaults here).
    """
    driver_url = make_url(async_url(url))
    options: dict[str, Any]
    if driver_url.get_backend_name() == "sqlite":
        memory = driver_url.database in (None, "", ":memory:")
        options = {"poolclass": StaticPool} if memory else {"pool_size": 5, "max_overflow": 5}
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        # Each step is bounded on its own too (a statement past command_timeout is
        # cancelled on the server); BoundedEngine bounds their sum.
        step = query_timeout or QUERY_TIMEOUT_SECONDS
        options = {
            "pool_size": 10,
            "max_overflow": 10,
            "pool_timeout": step,
            "pool_pre_ping": True,  # a restarted server costs one failed ping, not a 500
            "pool_recycle": 1800,
            "connect_args": {"command_timeout": query_timeout, "timeout": step},
        }
    options.update(kwargs)
    if driver_url.get_backend_name() == "sqlite":
        # The arguments SQLAlchemy would pass to aiosqlite.connect (an async_creator
        # takes none), with connect_args on top as it merges them.
        args, params = driver_url.get_dialect()().create_connect_args(driver_url)
        params.update(options.pop("connect_args", {}))
        options["async_creator"] = partial(_connect_sqlite, *args, **params)
    engine = create_async_engine(driver_url, **options)
    if driver_url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    elif query_timeout is not None:
        return BoundedEngine(engine.sync_engine, query_timeout)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose loaded objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
