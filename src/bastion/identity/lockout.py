"""Brute-force defence for the login pages: progressive throttling per account and per
address, in the database so every instance sees the same counts (DESIGN.md: login
throttling is where exactness is worth a round trip).

Each key (``account:<typed username>``, ``ip:<address>``) has some free failures; after
them every further failure blocks the key for twice as long as the last, up to
:attr:`Policy.max_block` — never longer, so a lock always ends. A quiet
:attr:`Policy.window` resets the count. An attacker who keeps failing can keep an
account throttled, but not its owner out: an address from which the account signed in
successfully in the last :data:`~bastion.gateway._owners.OWNER_SECONDS` (30 days, the
window every throttle spares owners for) is not held back by the account's block (only
by its own address count). Unknown usernames are counted the same way, so a block
says nothing about whether an account exists. Crossing into a block is a
``security_event`` in the audit log (``kind: login_lockout`` / ``login_address_blocked``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.gateway._owners import OWNER_SECONDS
from bastion.model import Clock, system_clock
from bastion.store._db import db_errors, now_utc
from bastion.store.models import LoginEvent, LoginFailure

_failures = cast(Table, LoginFailure.__table__)
_events = cast(Table, LoginEvent.__table__)


@dataclass(frozen=True, slots=True)
class Policy:
    free: int  # failures before the first block
    first_block: float  # seconds; doubles with every further failure
    max_block: float  # seconds; the longest any single block lasts
    window: float  # seconds without a failure after which the count starts again


ACCOUNT = Policy(free=5, first_block=5, max_block=900, window=3600)
ADDRESS = Policy(free=20, first_block=1, max_block=900, window=3600)


@dataclass(frozen=True, slots=True)
class Blocked:
    """What :meth:`LoginThrottle.failures_blocked` returns while a key is blocked."""

    key: str
    retry_after: int


def block_seconds(policy: Policy, failures: int) -> float:
    """How long a key is blocked after its ``failures``-th failure (0 while free)."""
    if failures <= policy.free:
        return 0.0
    return float(min(policy.max_block, policy.first_block * 2.0 ** (failures - policy.free - 1)))


Emit = Callable[[dict[str, Any]], None]


class LoginThrottle:
    """The :class:`bastion.oauth.login.Throttle` of the login steps."""

    def __init__(
        self, engine: AsyncEngine, *, emit: Emit, clock: Clock = system_clock,
        account: Policy = ACCOUNT, address: Policy = ADDRESS,
    ) -> None:  # fmt: skip
        self._engine = engine
        self._emit = emit
        self._clock = clock
        self._policies = {"account": account, "ip": address}

    def _keys(self, account: str | None, ip: str) -> list[tuple[str, Policy]]:
        keys = [(f"ip:{ip}"[:300], self._policies["ip"])]
        if account:
            keys.append((f"account:{account.casefold()}"[:300], self._policies["account"]))
        return keys

    async def failures_blocked(self, *, account: str | None, ip: str) -> Blocked | None:
        now = now_utc(self._clock)
        keys = self._keys(account, ip)
        with db_errors("login throttle"):
            async with self._engine.connect() as conn:
                rows = {
                    r.key: r
                    for r in await conn.execute(
                        select(_failures).where(_failures.c.key.in_([k for k, _ in keys]))
                    )
                }
        for key, _ in keys:
            row = rows.get(key)
            if row is None or row.blocked_until is None or row.blocked_until <= now:
                continue
            if key.startswith("account:") and account and await self._known(account, ip):
                continue  # the owner's usual address: not held back by the account's block
            return Blocked(key, max(1, int((row.blocked_until - now).total_seconds()) + 1))
        return None

    async def _known(self, account: str, ip: str) -> bool:
        since = now_utc(self._clock) - timedelta(seconds=OWNER_SECONDS)
        with db_errors("login throttle"):
            async with self._engine.connect() as conn:
                found = await conn.scalar(
                    select(_events.c.id)
                    .where(and_(_events.c.subject == account, _events.c.client_ip == ip,
                                _events.c.outcome == "success", _events.c.at >= since))
                    .limit(1)
                )  # fmt: skip
        return found is not None

    async def record_failure(self, *, account: str | None, ip: str) -> None:
        now = now_utc(self._clock)
        for key, policy in self._keys(account, ip):
            failures = await self._count(key, policy, now)
            seconds = block_seconds(policy, failures)
            if seconds:
                with db_errors("login throttle"):
                    async with self._engine.begin() as conn:
                        await conn.execute(
                            update(_failures)
                            .where(_failures.c.key == key)
                            .values(blocked_until=now + timedelta(seconds=seconds))
                        )
                if failures == policy.free + 1 or seconds == policy.max_block:
                    kind = (
                        "login_lockout" if key.startswith("account:") else "login_address_blocked"
                    )
                    self._emit({"event": "security_event", "kind": kind, "key": key,
                                "failures": failures, "blocked_seconds": seconds})  # fmt: skip

    async def _count(self, key: str, policy: Policy, now: datetime) -> int:
        """Add one failure to ``key`` (starting again after a quiet window); the count."""
        quiet = now - timedelta(seconds=policy.window)
        with db_errors("login throttle"):
            async with self._engine.begin() as conn:
                row = (
                    await conn.execute(select(_failures).where(_failures.c.key == key))
                ).one_or_none()
                if row is None:
                    try:
                        await conn.execute(
                            insert(_failures).values(key=key, failures=1, first_at=now, last_at=now)
                        )
                    except IntegrityError:  # a concurrent first failure: count this one too
                        return await self._count(key, policy, now)
                    return 1
                failures = 1 if row.last_at < quiet else row.failures + 1
                await conn.execute(
                    update(_failures)
                    .where(_failures.c.key == key)
                    .values(
                        failures=failures,
                        last_at=now,
                        first_at=now if failures == 1 else row.first_at,
                    )
                )
                return int(failures)

    async def record_success(self, *, account: str, ip: str) -> None:
        """A successful sign-in clears the account's count (not the address's)."""
        with db_errors("login throttle"):
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(_failures)
                    .where(_failures.c.key == f"account:{account.casefold()}"[:300])
                    .values(failures=0, blocked_until=None)
                )
