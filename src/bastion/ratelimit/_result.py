"""The outcome of one rate-limit check and its HTTP headers.

Headers follow draft-ietf-httpapi-ratelimit-headers-10: ``RateLimit-Policy`` names the
quota (``q``) and its window (``w``); ``RateLimit`` gives what is left (``r``) and the
seconds until it is restored (``t``). A denial adds ``Retry-After`` (RFC 9110 §10.2.3),
never earlier than ``t``.
"""

from __future__ import annotations

from typing import NamedTuple

from bastion.errors import RateLimited


def _sf_string(value: str) -> str:
    # RFC 8941 §3.3.3: an sf-string is quoted, with '"' and '\' escaped.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# (policy, quota, window) -> (the policy as an sf-string, the RateLimit-Policy value): the
# few configured policies recur on every response. Bounded: policies come from config.
_POLICIES: dict[tuple[str, int, int], tuple[str, str]] = {}


class LimitResult(NamedTuple):
    """One check of one policy for one key (a named tuple: built on every check of
    every policy, it must be cheap to make).

    Args:
        allowed: whether the unit was granted.
        policy: the policy name, e.g. ``"ip"``, ``"principal"``, ``"route:orders"``.
        limit: the quota (units per window).
        remaining: units left after this check (0 when denied).
        reset_after: whole seconds until a unit is available again; at least 1 when denied.
        window: the window length in seconds.
    """

    allowed: bool
    policy: str
    limit: int
    remaining: int
    reset_after: int
    window: int

    def headers(self) -> list[tuple[str, str]]:
        """The response headers describing this result."""
        key = (self.policy, self.limit, self.window)
        known = _POLICIES.get(key)
        if known is None:
            name = _sf_string(self.policy)
            known = (name, f"{name};q={self.limit};w={self.window}")
            if len(_POLICIES) < 1024:
                _POLICIES[key] = known
        name, quota = known
        headers = [
            ("RateLimit-Policy", quota),
            ("RateLimit", f"{name};r={self.remaining};t={self.reset_after}"),
        ]
        if not self.allowed:
            headers.append(("Retry-After", str(self.retry_after)))
        return headers

    @property
    def retry_after(self) -> int:
        """Seconds a denied client should wait; never earlier than ``t``, at least 1."""
        return max(self.reset_after, 1)

    def error(self) -> RateLimited:
        """The 429 error a front door renders for a denied result."""
        return RateLimited(
            f"rate limit {self.policy} exhausted",
            retry_after=self.retry_after,
            headers=self.headers(),
        )
