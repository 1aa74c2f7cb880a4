"""argon2id password hashing, off the event loop and bounded.

Parameters: argon2id, m=19456 KiB (19 MiB), t=2, p=1 — OWASP's Password Storage Cheat
Sheet minimum for argon2id. On the reference 2-core box one verify takes ~20-30 ms of one
core, so a box checks ~80 passwords/s; higher ``memory_cost`` buys attack cost at the
price of login throughput and RAM (``max_workers`` x ``memory_cost`` at peak).

Verification runs in a small dedicated thread pool (argon2-cffi releases the GIL). At most
``max_pending`` verifications may be queued or running; beyond that a caller gets
:class:`~bastion.errors.RateLimited` at once, so a flood of logins cannot queue unbounded
work or memory. Unknown and disabled users are checked against a dummy hash made with the
same parameters, so timing does not tell them apart from real ones.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from bastion.errors import RateLimited

T = TypeVar("T")

TIME_COST = 2
MEMORY_COST_KIB = 19456
PARALLELISM = 1
HASH_LEN = 32
SALT_LEN = 16


def make_hasher(
    *,
    time_cost: int = TIME_COST,
    memory_cost: int = MEMORY_COST_KIB,
    parallelism: int = PARALLELISM,
) -> PasswordHasher:
    """An argon2id hasher with explicit (never library-default) parameters."""
    return PasswordHasher(
        time_cost=time_cost,
        memory_cost=memory_cost,
        parallelism=parallelism,
        hash_len=HASH_LEN,
        salt_len=SALT_LEN,
        type=Type.ID,
    )


def hash_password(password: str, hasher: PasswordHasher | None = None) -> str:
    """Hash synchronously (CLI use; the server uses :meth:`Passwords.hash`)."""
    return (hasher or make_hasher()).hash(password)


class Passwords:
    """Hash and verify passwords in a bounded worker pool.

    Args:
        hasher: argon2 hasher; defaults to :func:`make_hasher`.
        max_workers: threads verifying at once (default: CPU count, at most 4).
        max_pending: verifications queued or running before callers are throttled.
    """

    def __init__(
        self,
        hasher: PasswordHasher | None = None,
        *,
        max_workers: int | None = None,
        max_pending: int | None = None,
    ) -> None:
        self.hasher = hasher or make_hasher()
        workers = max_workers or min(4, os.cpu_count() or 1)
        self.max_pending = max_pending if max_pending is not None else workers * 8
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bastion-argon2")
        self._pending = 0
        # Made once per process with the live parameters, so a dummy verify costs the same.
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(32))

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._pending >= self.max_pending:
            raise RateLimited("password_verify_busy", retry_after=1, headers=[("Retry-After", "1")])
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        finally:
            self._pending -= 1

    def verify_sync(self, password_hash: str, password: str) -> bool:
        """True if the password matches; never raises for a bad or foreign hash."""
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def verify(self, password_hash: str, password: str) -> bool:
        """Verify off the event loop. Raises RateLimited when too many are in flight."""
        return await self._run(lambda: self.verify_sync(password_hash, password))

    async def verify_dummy(self, password: str) -> None:
        """Spend the same time as a real verify, for users that do not exist or are disabled."""
        await self._run(lambda: self.verify_sync(self._dummy_hash, password))

    async def hash(self, password: str) -> str:
        return await self._run(lambda: self.hasher.hash(password))

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
