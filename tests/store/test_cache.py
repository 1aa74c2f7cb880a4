from __future__ import annotations

import pytest

from bastion.store.cache import TTLCache
from tests.store._db import FakeClock


def test_entries_expire_after_ttl() -> None:
    clock = FakeClock()
    cache: TTLCache[str, int] = TTLCache(10, 30, clock=clock)
    cache.set("a", 1)
    clock.advance(29.9)
    assert cache.get("a") == 1
    clock.advance(0.1)
    assert cache.get("a") is None
    assert len(cache) == 0


def test_clock_going_backwards_makes_entries_stale() -> None:
    clock = FakeClock()
    cache: TTLCache[str, int] = TTLCache(10, 30, clock=clock)
    cache.set("a", 1)
    clock.advance(-1)
    assert cache.get("a") is None


def test_size_is_bounded_least_recently_used_goes_first() -> None:
    cache: TTLCache[int, int] = TTLCache(3, 60, clock=FakeClock())
    for i in range(3):
        cache.set(i, i)
    assert cache.get(0) == 0  # 0 is now the most recently used
    cache.set(3, 3)
    assert len(cache) == 3
    assert cache.get(1) is None
    assert [cache.get(i) for i in (0, 2, 3)] == [0, 2, 3]


def test_zero_ttl_caches_nothing_and_pop_clear() -> None:
    cache: TTLCache[str, int] = TTLCache(3, 0, clock=FakeClock())
    cache.set("a", 1)
    assert cache.get("a") is None
    cache = TTLCache(3, 10, clock=FakeClock())
    cache.set("a", 1)
    cache.set("b", 2)
    cache.pop("a")
    cache.pop("missing")
    assert cache.get("a") is None
    cache.clear()
    assert len(cache) == 0


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_size"):
        TTLCache(0, 1)
