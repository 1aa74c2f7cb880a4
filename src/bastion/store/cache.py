"""A small bounded LRU cache with a time-to-live per entry, for hot reads (no I/O, no locks:
it lives on one event loop)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from bastion.model import Clock, system_clock

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """At most ``max_size`` entries, each valid for ``ttl`` seconds of ``clock``.

    An entry whose clock reading runs backwards past its insertion is treated as stale,
    so a clock step cannot keep an entry alive longer than ``ttl``.
    """

    def __init__(self, max_size: int, ttl: float, *, clock: Clock = system_clock) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.ttl = ttl
        self._clock = clock
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K) -> V | None:
        item = self._data.get(key)
        if item is None:
            return None
        stored, value = item
        now = self._clock()
        if not stored <= now < stored + self.ttl:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    def set(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        self._data[key] = (self._clock(), value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_size:
            self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()
