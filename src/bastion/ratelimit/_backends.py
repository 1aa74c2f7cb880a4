"""Where counters live: limits' in-process memory storage, or Redis through redis-py.

Both answer the same two questions for a parsed rate and a storage key: *consume one
unit* (``hit``) and *how much is left* (``peek``), each returning the remaining units and
the seconds until a unit frees up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol

from limits import RateLimitItem
from limits.storage import MemoryStorage

from bastion.model import Clock

Strategy = str  # "fixed-window" | "moving-window" | "sliding-window-counter"


class Backend(Protocol):
    local: bool  # counters live in this process only (no other instance can add to them)

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


SWEEP_SECONDS = 1.0


class LoopMemoryStorage(MemoryStorage):
    """limits' MemoryStorage without its expiry thread.

    The stock storage starts a ``threading.Timer`` every 10 ms while counters change;
    each start hands the GIL to a new thread and stalls the event loop (measured: ~24%
    of a busy worker's time in ``Condition.wait``). Here the same sweep runs on the
    event loop, at most once a second, from :meth:`MemoryBackend.hit`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.timer.cancel()

    # Overrides limits' name-mangled private hook (MemoryStorage.__schedule_expiry).
    def _MemoryStorage__schedule_expiry(self) -> None:
        """No thread: :meth:`sweep` is called from the event loop instead."""

    def sweep(self) -> None:
        self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


class MemoryBackend:
    """limits' *synchronous* MemoryStorage, called directly on the event loop.

    It does no I/O, so it is safe on the loop, and calling its primitives with a
    pre-built key skips the async locks, task scheduling and per-call key building of
    the async strategy classes. Expired counters are swept on the loop at most once a
    second, so memory stays bounded by the number of keys live within one window.
    """

    local = True

    def __init__(self, strategy: Strategy, clock: Clock) -> None:
        self.storage = LoopMemoryStorage()
        self._clock = clock
        self._strategy = strategy
        self.sliding = strategy == "sliding-window-counter"
        self._next_sweep = 0.0
        # Sliding-window counters: key -> [window index, current count, previous count,
        # window seconds]. limits' arithmetic (see sliding_hit) on one dict lookup: the
        # storage's own version builds two keys and takes two locks per check (~10 µs).
        self._windows: dict[str, list[int]] = {}

    def _sweep(self, now: float) -> None:
        """Drop expired counters (called at most once per :data:`SWEEP_SECONDS`)."""
        self._next_sweep = now + SWEEP_SECONDS
        self.storage.sweep()
        dead = [k for k, (w, _, _, e) in self._windows.items() if now // e - w >= 2]
        for k in dead:
            del self._windows[k]

    def _sliding_window(self, key: str, expiry: int, now: float) -> list[int]:
        index = int(now // expiry)
        entry = self._windows.get(key)
        if entry is None:
            entry = self._windows[key] = [index, 0, 0, expiry]
        elif entry[0] != index:
            entry[2] = entry[1] if entry[0] == index - 1 else 0
            entry[0], entry[1] = index, 0
        return entry

    def sliding_hit(
        self, amount: int, expiry: int, key: str, now: float
    ) -> tuple[bool, int, float]:
        """:meth:`hit_counts` under the sliding-window-counter strategy (the default)."""
        # limits' MemoryStorage.acquire_sliding_window_entry: the previous window weighs by
        # the share of it still inside the sliding window.
        index = int(now // expiry)
        entry = self._windows.get(key)
        if entry is None or entry[0] != index:
            entry = self._sliding_window(key, expiry, now)
        into = now % expiry
        prev = entry[2]
        if not prev:  # the common case, sliding_stats without a previous window
            allowed = entry[1] < amount
            if allowed:
                entry[1] += 1
            used = entry[1]
            return (
                allowed,
                max(0, amount - used),
                ((2 * expiry - into) % expiry or expiry) if used else 0.0,
            )
        prev_ttl = expiry - into
        allowed = math.floor(prev * prev_ttl / expiry + entry[1]) + 1 <= amount
        if allowed:
            entry[1] += 1
        remaining, reset_in = sliding_stats(
            amount, expiry, prev, prev_ttl, entry[1], 2 * expiry - into
        )
        return allowed, remaining, reset_in

    def sliding_hit_all(
        self, checks: Iterable[tuple[str, str, Any, int, int]], now: float
    ) -> tuple[bool, str, int, int, int, float] | None:
        """:meth:`sliding_hit` for each (policy, key, item, window, amount) check in turn,
        in one loop: the first denial (its unit and later checks' not consumed), else the
        check with the fewest units left (the first of equals); None for no checks.

        Returns (allowed, policy, amount, window, remaining, seconds until a unit frees
        up). The arithmetic is :meth:`sliding_hit`'s, term for term; only the tightest
        check's reset time is computed.
        """
        windows = self._windows
        tightest = None
        least = 0
        for check in checks:
            policy, key, _, expiry, amount = check
            entry = windows.get(key)
            if entry is None or entry[0] != int(now // expiry):
                entry = self._sliding_window(key, expiry, now)
            prev = entry[2]
            if prev:
                weight = prev * (expiry - now % expiry) / expiry  # the previous window's share
                if math.floor(weight + entry[1]) + 1 > amount:
                    return (False, policy, amount, expiry, *self._denied(amount, expiry, key, now))
                entry[1] += 1
                remaining = max(0, amount - math.floor(weight + entry[1]))
            else:
                if entry[1] >= amount:
                    return (False, policy, amount, expiry, *self._denied(amount, expiry, key, now))
                entry[1] += 1
                remaining = amount - entry[1]
            if tightest is None or remaining < least:
                tightest, least = check, remaining
        if tightest is None:
            return None
        policy, key, _, expiry, amount = tightest
        _, cur, prev, _ = windows[key]
        into = now % expiry
        if prev:
            reset_in = sliding_stats(amount, expiry, prev, expiry - into, cur, 2 * expiry - into)[1]
        else:
            reset_in = (2 * expiry - into) % expiry or expiry
        return True, policy, amount, expiry, least, reset_in

    def _denied(self, amount: int, expiry: int, key: str, now: float) -> tuple[int, float]:
        """(remaining, reset) of a check :meth:`sliding_hit_all` found exhausted."""
        allowed, remaining, reset_in = self.sliding_hit(amount, expiry, key, now)
        if allowed:  # pragma: no cover - the caller saw no room at this same instant
            raise RuntimeError("sliding window counted a unit it had refused")
        return remaining, reset_in

    def _sliding_peek(self, amount: int, expiry: int, key: str) -> tuple[int, float]:
        now = self._clock()
        entry = self._sliding_window(key, expiry, now)
        into = now % expiry
        prev_ttl = (expiry - into) if entry[2] else 0.0
        return sliding_stats(amount, expiry, entry[2], prev_ttl, entry[1], 2 * expiry - into)

    async def hit(self, item: RateLimitItem, key: str) -> tuple[bool, int, float]:
        return self.hit_now(item, key)

    def hit_now(self, item: RateLimitItem, key: str) -> tuple[bool, int, float]:
        """:meth:`hit` without a coroutine: no I/O, so the gateway calls it directly."""
        return self.hit_counts(item.amount, item.get_expiry(), key)

    def now(self) -> float:
        """The clock, first sweeping expired counters if that is due (or the clock was
        set back); hits made at one instant share one reading."""
        now = self._clock()
        if not self._next_sweep - SWEEP_SECONDS <= now < self._next_sweep:
            self._sweep(now)
        return now

    def hit_counts(
        self, amount: int, expiry: int, key: str, now: float | None = None
    ) -> tuple[bool, int, float]:
        """:meth:`hit_now` for a rate already read: ``amount`` units per ``expiry`` s;
        ``now`` from :meth:`now` when several hits share it."""
        if now is None:
            now = self.now()
        if self.sliding:
            return self.sliding_hit(amount, expiry, key, now)
        storage = self.storage
        if self._strategy == "moving-window":
            allowed = storage.acquire_entry(key, amount, expiry, 1)
            remaining, reset_in = self._moving(amount, expiry, key)
            return allowed, remaining, reset_in
        count = storage.incr(key, expiry, 1)
        return count <= amount, max(0, amount - count), storage.get_expiry(key) - self._clock()

    async def peek(self, item: RateLimitItem, key: str) -> tuple[int, float]:
        return self.peek_now(item, key)

    def peek_now(self, item: RateLimitItem, key: str) -> tuple[int, float]:
        """:meth:`peek` without a coroutine (no I/O)."""
        amount, expiry = item.amount, item.get_expiry()
        if self._strategy == "sliding-window-counter":
            return self._sliding_peek(amount, expiry, key)
        if self._strategy == "moving-window":
            return self._moving(amount, expiry, key)
        count = self.storage.get(key)
        return max(0, amount - count), self.storage.get_expiry(key) - self._clock()

    def _moving(self, amount: int, expiry: int, key: str) -> tuple[int, float]:
        # The same arithmetic as limits' MovingWindowRateLimiter.get_window_stats.
        start, used = self.storage.get_moving_window(key, amount, expiry)
        return max(0, amount - used), start + expiry - self._clock()

    def live_keys(self) -> list[str]:
        """Every live counter key (for tests and debugging)."""
        return [*self._windows, *self.storage.storage]

    async def aclose(self) -> None:
        self.storage.timer.cancel()
        self.storage.reset()


class RedisBackend:
    """limits' async RedisStorage on redis-py: each check is two round trips.

    Instances sharing one Redis and key prefix share every counter, so any number of
    bastion instances behave as one. The storage's primitives are called directly, as
    in :class:`MemoryBackend`: a fixed window then needs INCR + TTL instead of the
    strategy's INCR + GET + TTL.
    """

    local = False

    def __init__(
        self, url: str, strategy: Strategy, clock: Clock, *, key_prefix: str, timeout: float
    ) -> None:
        # Imported here: only a deployment with redis_url pays for the Redis client.
        from limits.aio.storage import RedisStorage
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

    @property
    def _bridge(self) -> Any:
        # limits exposes no client; its redis-py bridge keeps it as ``storage``.
        return self.storage.bridge

    async def remember(self, key: str, seconds: int) -> None:
        """Mark ``key`` (under the backend's prefix) for ``seconds``."""
        bridge = self._bridge
        await bridge.storage.set(bridge.prefixed_key(key), b"1", ex=seconds)

    async def known(self, key: str) -> bool:
        """Whether ``key`` was marked and has not expired."""
        bridge = self._bridge
        return bool(await bridge.storage.exists(bridge.prefixed_key(key)))

    async def clear_namespace(self) -> None:
        """Delete every key under this backend's prefix (tests and admin resets)."""
        await self.storage.reset()

    async def aclose(self) -> None:
        client = self._bridge.storage  # limits exposes no close()
        await client.aclose()
