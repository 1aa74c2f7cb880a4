"""Waiting for something another task or process does, with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def eventually(check: Callable[[], bool], seconds: float = 5.0, step: float = 0.02) -> bool:
    """Whether ``check()`` became true within ``seconds`` (asked every ``step``)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)
    return True


def until(check: Callable[[], bool], seconds: float = 15.0, step: float = 0.1) -> bool:
    """Whether ``check()`` became true within ``seconds``, for a test without a loop
    (another process is what it waits for)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
    return True
