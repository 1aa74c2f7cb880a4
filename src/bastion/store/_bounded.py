"""One bound on each use of a PostgreSQL connection, however its time is spent.

asyncpg bounds each step on its own — connecting, each statement — but one use of a
connection is several steps: waiting for the pool, connecting, SQLAlchemy's pre-ping (and
when the ping fails, a graceful close of up to 2 s), the statements, the commit, the
close. On a hung server the first request of each kind took 12 s under a 10 s bound.

Here the whole use is bounded. The checkout runs in a task of its own, cancelled when the
time is up (again and again: the clean-up of a failed ping waits on a shielded close);
once checked out, the time running out terminates the driver's connection, so whatever
waits on it fails at once — and the request with 503 (bastion.store._db.db_errors).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("bastion.store")
UNWIND_EVERY = 0.05  # seconds between cancels of a checkout past its time
UNWIND_TRIES = 20  # then the checkout is left to end on its own (and said so)


class BoundedConnection(AsyncConnection):
    """An :class:`AsyncConnection` whose use, from checkout to close, ends within its
    engine's ``bound`` seconds."""

    __slots__ = ("_timer",)

    async def start(self, is_ctxmanager: bool = False) -> AsyncConnection:
        engine = self.engine
        if not isinstance(engine, BoundedEngine):  # pragma: no cover - only made by one
            return await super().start(is_ctxmanager)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + engine.bound
        checkout = asyncio.ensure_future(super().start(is_ctxmanager))
        try:
            done, _ = await asyncio.wait({checkout}, timeout=engine.bound)
        except asyncio.CancelledError:
            checkout.cancel()
            raise
        if not done:
            await self._unwind(checkout)
            raise sa_exc.TimeoutError(f"no database connection within {engine.bound:g} s")
        checkout.result()  # the checkout's own error, if any
        self._timer = loop.call_at(deadline, self._expire)
        return self

    async def _unwind(self, checkout: asyncio.Future[Any]) -> None:
        """Cancel a checkout past its time until it ends; give back a connection it got."""
        checkout.add_done_callback(_retrieve)
        for _ in range(UNWIND_TRIES):
            checkout.cancel()
            done, _ = await asyncio.wait({checkout}, timeout=UNWIND_EVERY)
            if done:
                break
        else:
            log.error("a database checkout did not end after its time; left behind")
            return
        if not checkout.cancelled() and checkout.exception() is None:  # just in time
            self._expire()
            await super().close()

    def _expire(self) -> None:
        """The time is up: end the driver's connection, so no wait on it goes on."""
        sync = self.sync_connection
        if sync is None or sync.closed or sync.invalidated:
            return
        driver = sync.connection.driver_connection
        terminate = getattr(driver, "terminate", None)
        if terminate is not None:
            terminate()

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            timer: asyncio.TimerHandle | None = getattr(self, "_timer", None)
            if timer is not None:
                timer.cancel()


class BoundedEngine(AsyncEngine):
    """An :class:`AsyncEngine` whose connections are :class:`BoundedConnection`."""

    __slots__ = ("bound",)
    _connection_cls = BoundedConnection

    def __init__(self, sync_engine: Engine, bound: float) -> None:
        super().__init__(sync_engine)
        self.bound = bound


def _retrieve(task: asyncio.Future[Any]) -> None:
    # A checkout left to end on its own: its error is expected, not "never retrieved".
    if not task.cancelled():
        task.exception()
