"""Where accounts' owners authenticated: an account's failed-credential block does not
hold its owner back from an address it authenticated from before.

Someone who keeps failing an account's credential blocks it everywhere but there (a
lock-out by others would be a denial of service); there only the address's own count
holds a request back. With shared counters (Redis) the pairs are shared too, so every
instance spares them.
"""

from __future__ import annotations

import logging
import time

from bastion.errors import BastionError
from bastion.gateway._ports import Limiter
from bastion.ratelimit import FAILED_ACCOUNT_POLICY, LimitResult

log = logging.getLogger("bastion.gateway")

GOOD_PAIR_SECONDS = 7 * 86400
_PAIRS_MAX = 65536  # (account, address) pairs remembered, oldest out
_SHARE_EVERY = 3600.0  # each instance shares a pair again at most this often


def account_block(blocked: LimitResult | None) -> bool:
    """Whether ``blocked`` is an account's failed-credential block (not an address's)."""
    return blocked is not None and blocked.policy == FAILED_ACCOUNT_POLICY


class Owners:
    """The (account, address) pairs that authenticated recently (bounded)."""

    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter
        self._pairs: dict[tuple[str, str], float] = {}
        self._shared: dict[tuple[str, str], float] = {}

    def note(self, account: str | None, ip: str) -> None:
        """Remember that ``account`` authenticated from ``ip``."""
        if account is None:
            return
        pairs, key = self._pairs, (account, ip)
        pairs.pop(key, None)
        if len(pairs) >= _PAIRS_MAX:
            del pairs[next(iter(pairs))]
        pairs[key] = time.monotonic()

    def exempt(self, blocked: LimitResult | None, account: str | None, ip: str) -> bool:
        """Whether ``blocked`` is the account's block and ``account`` authenticated from
        ``ip`` here in the last GOOD_PAIR_SECONDS."""
        if account is None or not account_block(blocked):
            return False
        seen = self._pairs.get((account, ip))
        return seen is not None and time.monotonic() - seen < GOOD_PAIR_SECONDS

    async def seen_elsewhere(
        self, blocked: LimitResult | None, account: str | None, ip: str
    ) -> bool:
        """:meth:`exempt` for a pair another instance saw (shared counters only)."""
        if self._limiter.in_process or account is None or not account_block(blocked):
            return False
        return await self._limiter.owner_known(account, ip)

    async def share(self, account: str, ip: str) -> None:
        """Share a pair with the other instances (call with shared counters only)."""
        key, now = (account, ip), time.monotonic()
        shared = self._shared.get(key)
        if shared is not None and now - shared < _SHARE_EVERY:
            return
        try:
            await self._limiter.remember_owner(account, ip, GOOD_PAIR_SECONDS)
        except BastionError as exc:  # the request succeeded; only the sparing is lost
            log.warning("could not share an account's good address: %s", exc.reason)
            return
        if len(self._shared) >= _PAIRS_MAX:
            self._shared.clear()
        self._shared[key] = now
