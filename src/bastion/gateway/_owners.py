"""Failed-credential throttling that spares an account's owner: an account's block does
not hold them back from an address they authenticated from before.

Someone who keeps failing an account's credential blocks it everywhere but there (a
lock-out by others would be a denial of service); there only the address's own count
holds a request back. With shared counters (Redis) the pairs are shared too, so every
instance spares them.

:class:`CredentialThrottle` is the one throttle of every credential checked outside the
login form — the gateway's routes, the admin API, the device page's user codes — so an
owner spared on one is spared on all. The login form keeps its own progressive count in
the database (bastion.identity.lockout) with the same rule over the same window
(:data:`OWNER_SECONDS`); both satisfy bastion.oauth.login.Throttle.
"""

from __future__ import annotations

import logging
import time

from bastion.errors import BastionError
from bastion.gateway._ports import Limiter
from bastion.ratelimit import FAILED_ACCOUNT_POLICY, LimitResult

log = logging.getLogger("bastion.gateway")

OWNER_SECONDS = 30 * 86400  # how long a good (account, address) pair is spared
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
        ``ip`` here in the last OWNER_SECONDS."""
        if account is None or not account_block(blocked):
            return False
        seen = self._pairs.get((account, ip))
        return seen is not None and time.monotonic() - seen < OWNER_SECONDS

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
            await self._limiter.remember_owner(account, ip, OWNER_SECONDS)
        except BastionError as exc:  # the request succeeded; only the sparing is lost
            log.warning("could not share an account's good address: %s", exc.reason)
            return
        if len(self._shared) >= _PAIRS_MAX:
            self._shared.clear()
        self._shared[key] = now


class CredentialThrottle:
    """Failed credentials counted per account and per address on the rate limiter, an
    account's block sparing its owner's addresses (:class:`Owners`).

    Callers ask :meth:`failures_blocked` before checking a credential, then report
    :meth:`record_failure` or :meth:`record_success`.
    """

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter
        self.owners = Owners(limiter)

    def failures_blocked_now(self, *, account: str | None, ip: str) -> LimitResult | None:
        """:meth:`failures_blocked` from in-process counters, without a coroutine (and
        without the pairs other instances shared, which need I/O)."""
        blocked = self.limiter.failures_blocked_now(account=account, ip=ip)
        if self.owners.exempt(blocked, account, ip):
            blocked = self.limiter.failures_blocked_now(account=None, ip=ip)
        return blocked

    async def failures_blocked(self, *, account: str | None, ip: str) -> LimitResult | None:
        """The exhausted budget that holds ``account`` at ``ip`` back, else None: the
        account's, unless its owner authenticated from ``ip``; the address's always.

        Raises:
            Unavailable: the counters could not be reached (fail closed).
        """
        owners = self.owners
        blocked = await self.limiter.failures_blocked(account=account, ip=ip)
        if owners.exempt(blocked, account, ip) or await owners.seen_elsewhere(blocked, account, ip):
            blocked = await self.limiter.failures_blocked(account=None, ip=ip)
        return blocked

    async def record_failure(self, *, account: str | None, ip: str) -> None:
        await self.limiter.record_failure(account=account, ip=ip)

    async def record_success(self, *, account: str | None, ip: str) -> None:
        """``account`` authenticated from ``ip``: spare that pair from now on."""
        self.owners.note(account, ip)
        if account is not None and not self.limiter.in_process:
            await self.owners.share(account, ip)
