"""Rate limits and failed-credential throttling on the `limits` library (memory | Redis)."""

from __future__ import annotations

from bastion.ratelimit._limiter import (
    FAILED_ACCOUNT_POLICY,
    FAILED_IP_POLICY,
    Prepared,
    RateLimiter,
    ip_bucket,
    redis_key_prefix,
)
from bastion.ratelimit._result import LimitResult

__all__ = [
    "FAILED_ACCOUNT_POLICY",
    "FAILED_IP_POLICY",
    "LimitResult",
    "Prepared",
    "RateLimiter",
    "ip_bucket",
    "redis_key_prefix",
]
