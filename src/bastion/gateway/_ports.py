"""What the decision core needs from the rest of bastion, as protocols: rate limits
(:class:`bastion.ratelimit.RateLimiter`), audit and metrics (the runtime's observer) and
the signer of upstream assertions. Tests pass fakes that satisfy them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from bastion.gateway.decision import Decision
from bastion.model import Principal, RequestView
from bastion.ratelimit import LimitResult, Prepared


class Limiter(Protocol):
    """Rate limits (bastion.ratelimit.RateLimiter). The ``*_now`` methods answer from
    in-process counters and are called only when ``in_process`` is true."""

    @property
    def in_process(self) -> bool: ...

    def prepare(self, checks: Iterable[tuple[str, str | None, str]]) -> Prepared: ...

    def hit_all_now(self, checks: Prepared) -> LimitResult | None: ...

    async def hit_all(self, checks: Prepared) -> LimitResult | None: ...

    @property
    def failures_recent(self) -> bool:
        """False when :meth:`failures_blocked_now` would answer None for every account
        and address (no failed credential counted lately), so callers skip naming one."""

    def failures_blocked_now(self, *, account: str | None, ip: str) -> LimitResult | None: ...

    async def failures_blocked(self, *, account: str | None, ip: str) -> LimitResult | None: ...

    async def record_failure(self, *, account: str | None, ip: str) -> None: ...

    async def remember_owner(self, account: str, ip: str, seconds: int) -> None:
        """Share with other instances that ``account`` authenticated from ``ip``."""

    async def owner_known(self, account: str, ip: str) -> bool:
        """Whether another instance shared that pair (shared counters only)."""


class Observer(Protocol):
    """Audit and metrics for each decision (see bastion.audit)."""

    @property
    def blocked(self) -> bool:
        """True while decisions cannot be recorded: every request is then denied."""
        ...

    def decided(
        self, request: RequestView, decision: Decision, front_door: str, seconds: float
    ) -> None: ...


class AssertionSigner(Protocol):
    def sign(self, principal: Principal, audience: str, request_id: str) -> str: ...
