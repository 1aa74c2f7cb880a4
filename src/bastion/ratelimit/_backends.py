"""Where counters live: limits' in-process memory storage, or Redis through redis-py.

Both answer the same two questions for a parsed rate and a storage key: *consume one
unit* (``hit``) and *how much is left* (``peek``), each returning the remaining units and
the seconds until a unit frees up.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from limits import RateLimitItem
from limits.aio.storage import RedisStorage
from limits.storage import MemoryStorage

from bastion.model import Clock

Strategy = str  # "fixed-window" | "moving-window" | "sliding-window-counter"


class Backend(Protocol):
    async def hit(self, item: RateLimitItem, key: str) -> tuple[bool, int, float]:
        """Consume one unit: (allowed, remaining, seconds until a unit frees up)."""
        ...

    async def peek(self, item: RateLimitItem, key: str) -> tuple[int, float]:
        """Without consuming: (remaining, seconds until a unit frees up)."""
        ...

    async def aclose(self) -> None: ...


def sliding_stats(
    amount: int, expiry: int, prev: int, prev_ttl: float, cur: int, cur_ttl: float
) -> tuple[int, float]:
    """(remaining, seconds until a unit frees up) from a sliding-window-counter's state.

    The arithmetic of limits' ``SlidingWindowCounterRateLimiter.get_window_stats``, fed
    from the one storage call we already make; a current window that has just begun
    (its TTL a whole multiple of the window) lasts a full window, not zero seconds.
    """
    weighted = prev * prev_ttl / expiry + cur
    remaining = max(0, amount - math.floor(weighted))
    if not (prev or cur):
        return remaining, 0.0
    prev_in = prev_ttl % (expiry / prev) if prev else math.inf
    cur_in = (cur_ttl % expiry or float(expiry)) if cur else math.inf
    return remaining, min(prev_in, cur_in)


class MemoryBackend:
    """limits' *synchronous* MemoryStorage, called directly on the event loop.

    It does no I/O, so it is safe on the loop, and calling its primitives with a
    pre-built key skips the async locks, task scheduling and per-call key building of
    the async strategy classes (about 10 µs per check instead of 16-18 µs). Expired
    counters are swept by the storage's own timer thread, so memory stays bounded by
    the number of keys live within one window.
    """

    def __init__(self, strategy: Strategy, clock: Clock) -> None:
        self.storage = MemoryStorage()
        self._clock = clock
        self._strategy = strategy

    async def hit(self, item: RateLimitItem, key: str) -> tuple[bool, int, float]:
        amount, expiry, storage = item.amount, item.get_expiry(), self.storage
        if self._strategy == "sliding-window-counter":
            allowed = storage.acquire_sliding_window_entry(key, amount, expiry, 1)
            remaining, reset_in = self._sliding(amount, expiry, key)
            return allowed, remaining, reset_in
        if self._strategy == "moving-window":
            allowed = storage.acquire_entry(key, amount, expiry, 1)
            remaining, reset_in = self._moving(amount, expiry, key)
            return allowed, remaining, reset_in
        count = storage.incr(key, expiry, 1)
        return count <= amount, max(0, amount - count), storage.get_expiry(key) - self._clock()

    async def peek(self, item: RateLimitItem, key: str) -> tuple[int, float]:
        amount, expiry = item.amount, item.get_expiry()
        if self._strategy == "sliding-window-counter":
            return self._sliding(amount, expiry, key)
        if self._strategy == "moving-window":
            return self._moving(amount, expiry, key)
        count = self.storage.get(key)
        return max(0, amount - count), self.storage.get_expiry(key) - self._clock()

    def _moving(self, amount: int, expiry: int, key: str) -> tuple[int, float]:
        # The same arithmetic as limits' MovingWindowRateLimiter.get_window_stats.
        start, used = self.storage.get_moving_window(key, amount, expiry)
        return max(0, amount - used), start + expiry - self._clock()

    def _sliding(self, amount: int, expiry: int, key: str) -> tuple[int, float]:
        return sliding_stats(amount, expiry, *self.storage.get_sliding_window(key, expiry))

    async def aclose(self) -> None:
        self.storage.timer.cancel()


class RedisBackend:
    """limits' async RedisStorage on redis-py: each check is two round trips.

    Instances sharing one Redis and key prefix share every counter, so any number of
    bastion instances behave as one. The storage's primitives are called directly, as
    in :class:`MemoryBackend`: a fixed window then needs INCR + TTL instead of the
    strategy's INCR + GET + TTL.
    """

    def __init__(
        self, url: str, strategy: Strategy, clock: Clock, *, key_prefix: str, timeout: float
    ) -> None:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            # One immediate retry reconnects a pooled connection Redis dropped; more would
            # only delay the fail-closed 503 while Redis is down.
            "retry": Retry(NoBackoff(), 1),
        }
        self.storage = RedisStorage(
            "async+" + url,
            implementation="redispy",
            key_prefix=key_prefix,
            wrap_exceptions=True,
            **options,
        )
        self._clock = clock
        self._strategy = strategy

    async def hit(self, item: RateLimitItem, key: str) -> tuple[bool, int, float]:
        amount, expiry, storage = item.amount, item.get_expiry(), self.storage
        if self._strategy == "sliding-window-counter":
            allowed = await storage.acquire_sliding_window_entry(key, amount, expiry, 1)
            remaining, reset_in = await self._sliding(amount, expiry, key)
            return bool(allowed), remaining, reset_in
        if self._strategy == "moving-window":
            allowed = await storage.acquire_entry(key, amount, expiry, 1)
            remaining, reset_in = await self._moving(amount, expiry, key)
            return bool(allowed), remaining, reset_in
        count = int(await storage.incr(key, expiry, 1))
        reset = await storage.get_expiry(key)
        return count <= amount, max(0, amount - count), reset - self._clock()

    async def peek(self, item: RateLimitItem, key: str) -> tuple[int, float]:
        amount, expiry = item.amount, item.get_expiry()
        if self._strategy == "sliding-window-counter":
            return await self._sliding(amount, expiry, key)
        if self._strategy == "moving-window":
            return await self._moving(amount, expiry, key)
        count = int(await self.storage.get(key))
        return max(0, amount - count), await self.storage.get_expiry(key) - self._clock()

    async def _moving(self, amount: int, expiry: int, key: str) -> tuple[int, float]:
        start, used = await self.storage.get_moving_window(key, amount, expiry)
        return max(0, amount - int(used)), float(start) + expiry - self._clock()

    async def _sliding(self, amount: int, expiry: int, key: str) -> tuple[int, float]:
        window = await self.storage.get_sliding_window(key, expiry)
        return sliding_stats(amount, expiry, *window)

    async def clear_namespace(self) -> None:
        """Delete every key under this backend's prefix (tests and admin resets)."""
        await self.storage.reset()

    async def aclose(self) -> None:
        # limits exposes no close(); its redis-py bridge keeps the client as ``storage``.
        client = self.storage.bridge.storage  # type: ignore[attr-defined]
        await client.aclose()
