"""A bounded cache of already-verified tokens, and jti revocation.

ES256 verification costs ~70 µs plus library overhead, which caps a worker at ~5k req/s
(DESIGN.md). A client presents the same access token many times, so the verified
:class:`~bastion.model.Principal` is kept, keyed by a SHA-256 of the token (the token
itself is never stored or logged). Every hit re-checks the clock against ``exp`` (no
leeway: an entry never outlives ``exp``) and asks the revocation hook, so caching never
extends a token's life.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from bastion.model import Clock, Principal, system_clock

RevocationHook = Callable[[Principal], bool]
"""True when a verified principal's token has been revoked (checked on every request).

Synchronous on purpose: it runs on the hot path, so a distributed implementation keeps a
local mirror (e.g. fed by Redis pub/sub) rather than making a round trip per request."""


class InMemoryRevocations:
    """Revoked ``jti`` values of this process, each remembered until its ``until`` time.

    Usable directly as a :data:`RevocationHook`.
    """

    def __init__(self, *, clock: Clock = system_clock, max_entries: int = 100_000) -> None:
        self._clock = clock
        self._max = max_entries
        self._until: dict[str, float] = {}

    def revoke_jti(self, jti: str, until: float) -> None:
        """Refuse tokens with this ``jti`` until ``until`` (normally the token's ``exp``)."""
        if len(self._until) >= self._max:
            self.purge()
        self._until[jti] = max(until, self._until.get(jti, until))

    def is_revoked(self, jti: str | None) -> bool:
        if jti is None:
            return False
        until = self._until.get(jti)
        return until is not None and self._clock() < until

    def purge(self) -> None:
        """Forget revocations whose tokens have expired anyway."""
        now = self._clock()
        self._until = {j: u for j, u in self._until.items() if u > now}

    def __call__(self, principal: Principal) -> bool:
        if not self._until:
            return False  # nothing revoked: the common case, asked on every request
        jti = principal.claims.get("jti")
        return self.is_revoked(jti if isinstance(jti, str) else None)

    def __len__(self) -> int:
        return len(self._until)


@dataclass(frozen=True, slots=True)
class CachedToken:
    issuer_name: str
    principal: Principal
    expires_at: float
    size: int


def token_key(token: str) -> bytes:
    """The cache key of a token: its SHA-256, so the cache never holds bearer tokens."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class VerifiedTokenCache:
    """LRU of verified tokens, bounded in entries and in (approximate) bytes.

    Args:
        max_entries: the most tokens kept.
        max_bytes: the most token bytes represented (claims are as big as the token).
        clock: seconds since the epoch.
        revoked: a :data:`RevocationHook` asked on every hit.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 32 * 1024 * 1024,
        clock: Clock = system_clock,
        revoked: RevocationHook | None = None,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("cache bounds must be positive")
        self._entries: OrderedDict[bytes, CachedToken] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self._clock = clock
        self._revoked = revoked
        self.hits = 0
        self.misses = 0

    def get(self, key: bytes, *, count_miss: bool = True) -> CachedToken | None:
        """The cached entry if it is still unexpired and not revoked; else drop it.

        ``count_miss=False``: a first look whose miss the caller will count by asking
        again (the gateway's no-I/O attempt before the full verification)."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += count_miss
            return None
        if self._clock() >= entry.expires_at or (
            self._revoked is not None and self._revoked(entry.principal)
        ):
            self._drop(key)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: bytes, issuer_name: str, principal: Principal, size: int) -> None:
        """Remember a verified principal until its ``exp``. Tokens without one are skipped."""
        expires_at = principal.expires_at
        if expires_at is None or self._clock() >= expires_at or size > self._max_bytes:
            return
        self._drop(key)
        self._entries[key] = CachedToken(issuer_name, principal, expires_at, size)
        self._bytes += size
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            _, oldest = self._entries.popitem(last=False)
            self._bytes -= oldest.size

    def _drop(self, key: bytes) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size

    def clear(self) -> None:
        """Forget everything (e.g. after an issuer's key is known compromised)."""
        self._entries.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)
