"""Waiting with a bound: start-up, shutdown and probes never hang on work that does not end.

A cancelled task may take its time to end, or never end: a library that swallows the
cancellation (redis-py's pub/sub read has done so, redis-py #2028) leaves whoever awaits
the task waiting for good. These helpers wait at most a given time and then go on, saying
so in the log, instead of awaiting the task to its end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

log = logging.getLogger("bastion.tasks")


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]], seconds: float, what: str) -> bool:
    """Cancel ``tasks`` and wait at most ``seconds`` for them to end; False (and a log
    line) when some did not. Their loops should also watch a stop flag of their own, so
    that they end even when a cancellation is lost."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return True
    _, still = await asyncio.wait(pending, timeout=seconds)
    if still:
        log.error("%s: %d task(s) did not stop within %.1f s", what, len(still), seconds)
        return False
    return True


async def within(awaitable: Awaitable[Any], seconds: float, what: str) -> bool:
    """Await ``awaitable`` for at most ``seconds``: True when it finished (its error, if
    any, logged), False when it did not (it is cancelled and left to end on its own)."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        log.error("%s did not finish within %.1f s", what, seconds)
        return False
    if not task.cancelled() and task.exception() is not None:
        log.warning("%s failed: %s", what, task.exception().__class__.__name__)
    return True
