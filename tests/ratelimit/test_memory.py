from __future__ import annotations

import asyncio
from collections.abc import Callable

import limits
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.config import RateLimitConfig
from bastion.ratelimit import (
    FAILED_ACCOUNT_POLICY,
    FAILED_IP_POLICY,
    LimitResult,
    Prepared,
    RateLimiter,
    ip_bucket,
)
from bastion.ratelimit._backends import MemoryBackend
from tests.ratelimit.conftest import STRATEGIES, FakeClock

Make = Callable[..., RateLimiter]

# At t=1000 s a 60 s sliding window has 20 s left (1000 = 16*60 + 40); fixed and moving
# windows start at the first hit.
FIRST_RESET = {"fixed-window": 60, "moving-window": 60, "sliding-window-counter": 20}


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_allows_up_to_the_limit_then_denies(make_memory: Make, strategy: str) -> None:
    limiter = make_memory(strategy=strategy)
    t = FIRST_RESET[strategy]
    results = [await limiter.hit("ip", "3/minute", "203.0.113.9") for _ in range(4)]

    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert results[0].headers() == [
        ("RateLimit-Policy", '"ip";q=3;w=60'),
        ("RateLimit", f'"ip";r=2;t={t}'),
    ]
    denied = results[3]
    # Denied: strictly after the instant a unit frees up.
    assert denied.reset_after == t + 1
    assert denied.headers() == [
        ("RateLimit-Policy", '"ip";q=3;w=60'),
        ("RateLimit", f'"ip";r=0;t={t + 1}'),
        ("Retry-After", str(t + 1)),
    ]


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_a_client_retrying_after_retry_after_is_allowed(
    make_memory: Make, clock: FakeClock, strategy: str
) -> None:
    limiter = make_memory(strategy=strategy)
    for _ in range(3):
        assert (await limiter.hit("ip", "3/minute", "k")).allowed
    denied = await limiter.hit("ip", "3/minute", "k")
    assert not denied.allowed

    clock.advance(denied.retry_after - 1.5)
    assert not (await limiter.hit("ip", "3/minute", "k")).allowed
    clock.advance(1.5)
    assert (await limiter.hit("ip", "3/minute", "k")).allowed


async def test_fixed_window_resets_fully_after_the_window(
    make_memory: Make, clock: FakeClock
) -> None:
    limiter = make_memory(strategy="fixed-window")
    for _ in range(3):
        await limiter.hit("ip", "3/minute", "k")
    clock.advance(60.01)
    result = await limiter.hit("ip", "3/minute", "k")
    assert (result.allowed, result.remaining, result.reset_after) == (True, 2, 60)


async def test_keys_and_policies_are_counted_apart(make_memory: Make) -> None:
    limiter = make_memory()
    assert (await limiter.hit("ip", "1/minute", "a")).allowed
    assert not (await limiter.hit("ip", "1/minute", "a")).allowed
    assert (await limiter.hit("ip", "1/minute", "b")).allowed
    assert (await limiter.hit("principal", "1/minute", "a")).allowed
    assert (await limiter.hit("route:orders", "1/minute", "a")).allowed


async def test_odd_and_long_keys_are_hashed_and_stay_distinct(make_memory: Make) -> None:
    limiter = make_memory()
    odd = ["a/b", "a", "x" * 10_000, "x" * 10_001, "ünï", "#" + "0" * 32]
    for key in odd:
        assert (await limiter.hit("principal", "1/minute", key)).allowed
    for key in odd:
        assert not (await limiter.hit("principal", "1/minute", key)).allowed
    backend = limiter.backend
    assert isinstance(backend, MemoryBackend)
    assert len(backend.live_keys()) == len(odd)
    assert max(len(k) for k in backend.live_keys()) < 120


async def test_each_rate_string_is_parsed_once(
    make_memory: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = limits.parse

    def counting(rate: str) -> limits.RateLimitItem:
        calls.append(rate)
        return real(rate)

    monkeypatch.setattr(limits, "parse", counting)
    limiter = make_memory()
    for i in range(5):
        await limiter.hit("ip", "10/minute", f"k{i}")
        await limiter.hit("principal", "5 per second", f"k{i}")
    assert calls == ["10/minute", "5 per second"]


async def test_failed_credentials_are_throttled_per_account(make_memory: Make) -> None:
    limiter = make_memory(failed_auth_per_account="2/minute", failed_auth_per_ip="100/minute")
    for i in range(2):
        assert await limiter.failures_blocked(account="alice", ip=f"198.51.100.{i}") is None
        await limiter.record_failure(account="alice", ip=f"198.51.100.{i}")

    blocked = await limiter.failures_blocked(account="alice", ip="198.51.100.77")
    assert blocked is not None
    assert (blocked.allowed, blocked.policy, blocked.limit) == (False, FAILED_ACCOUNT_POLICY, 2)
    assert blocked.retry_after >= blocked.reset_after >= 1
    # Another account, even one whose name embeds alice's, is not affected.
    for other in ("bob", "alice/", "alice ", "ALICE"):
        assert await limiter.failures_blocked(account=other, ip="198.51.100.77") is None


async def test_failed_credentials_are_throttled_per_ip(make_memory: Make) -> None:
    limiter = make_memory(failed_auth_per_account="100/minute", failed_auth_per_ip="3/minute")
    for i in range(3):
        await limiter.record_failure(account=f"user{i}", ip="192.0.2.1")
    await limiter.record_failure(account=None, ip="192.0.2.2")

    blocked = await limiter.failures_blocked(account="fresh", ip="192.0.2.1")
    assert blocked is not None
    assert (blocked.policy, blocked.remaining) == (FAILED_IP_POLICY, 0)
    assert await limiter.failures_blocked(account=None, ip="192.0.2.1") is not None
    assert await limiter.failures_blocked(account="fresh", ip="192.0.2.2") is None


async def test_checking_failures_consumes_nothing(make_memory: Make) -> None:
    limiter = make_memory(failed_auth_per_account="1/minute", failed_auth_per_ip="1/minute")
    for _ in range(50):
        assert await limiter.failures_blocked(account="carol", ip="192.0.2.9") is None
    await limiter.record_failure(account="carol", ip="192.0.2.9")
    assert await limiter.failures_blocked(account="carol", ip="192.0.2.10") is not None


async def test_failure_throttling_lifts_after_the_window(
    make_memory: Make, clock: FakeClock
) -> None:
    limiter = make_memory(failed_auth_per_account="1/minute", strategy="fixed-window")
    await limiter.record_failure(account="dave", ip="192.0.2.3")
    blocked = await limiter.failures_blocked(account="dave", ip="192.0.2.4")
    assert blocked is not None
    clock.advance(blocked.retry_after)
    assert await limiter.failures_blocked(account="dave", ip="192.0.2.4") is None


async def test_sliding_windows_forget_expired_keys() -> None:
    # A flood of distinct client IPs does not grow memory past two windows: counters are
    # swept on the event loop (no thread) at most once a second. Real time, 1 s window.
    limiter = RateLimiter.from_config(RateLimitConfig(), None)
    try:
        for i in range(200):
            await limiter.hit("ip", "5/second", f"10.0.{i // 250}.{i % 250}")
        backend = limiter.backend
        assert isinstance(backend, MemoryBackend)
        assert len(backend.live_keys()) == 200
        await asyncio.sleep(2.1)
        await limiter.hit("ip", "5/second", "203.0.113.1")
        assert backend.live_keys() == ["ip/203.0.113.1/5/1/second"]
    finally:
        await limiter.aclose()


async def test_memory_storage_forgets_expired_keys() -> None:
    # limits' MemoryStorage (fixed and moving windows) is swept on the event loop by the
    # next hit at least a second later: no timer thread. Real time, 1 s window.
    limiter = RateLimiter.from_config(RateLimitConfig(strategy="fixed-window"), None)
    try:
        for i in range(200):
            await limiter.hit("ip", "5/second", f"10.0.{i // 250}.{i % 250}")
        backend = limiter.backend
        assert isinstance(backend, MemoryBackend)
        assert len(backend.storage.storage) == 200
        await asyncio.sleep(1.1)
        await limiter.hit("ip", "5/second", "203.0.113.1")  # sweeps, then counts
        assert list(backend.storage.storage) == ["ip/203.0.113.1/5/1/second"]
        assert not backend.storage.timer.is_alive()  # no expiry thread was ever started
    finally:
        await limiter.aclose()


# -- hit_all_now's one-loop sliding window against one sliding_hit per check ------------

_CHECKS = (("ip", "3/minute", "a"), ("principal", "5/minute", "p"), ("route:x", "2/10second", "p"))


def _one_by_one(limiter: RateLimiter, checks: Prepared) -> LimitResult | None:
    """What hit_all_now answered before it became one loop: sliding_hit per check."""
    backend = limiter.backend
    assert isinstance(backend, MemoryBackend)
    now = backend.now()
    tightest = None
    for policy, skey, _, window, amount in checks:
        allowed, remaining, reset_in = backend.sliding_hit(amount, window, skey, now)
        result = RateLimiter._result(allowed, policy, amount, remaining, reset_in, window)
        if not allowed:
            return result
        if tightest is None or result.remaining < tightest.remaining:
            tightest = result
    return tightest


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 80).map(lambda half_seconds: half_seconds / 2),
            st.lists(st.sampled_from(range(len(_CHECKS))), max_size=3),
        ),
        max_size=40,
    )
)
def test_sliding_hit_all_answers_as_one_hit_per_check(
    steps: list[tuple[float, list[int]]],
) -> None:
    clock = FakeClock()
    fast = RateLimiter.from_config(RateLimitConfig(), None, clock=clock)
    slow = RateLimiter.from_config(RateLimitConfig(), None, clock=clock)
    for advance, picked in steps:
        clock.advance(advance)
        checks = fast.prepare(_CHECKS[i] for i in picked)
        assert fast.hit_all_now(checks) == _one_by_one(slow, checks)
        assert fast.backend._windows == slow.backend._windows  # type: ignore[attr-defined]


async def test_failures_recent_says_when_a_peek_could_find_anything(make_memory: Make) -> None:
    limiter = make_memory(failed_auth_per_ip="1/minute")
    assert not limiter.failures_recent  # nothing counted: the gateway names no account
    assert limiter.failures_blocked_now(account="alice", ip="198.51.100.7") is None
    await limiter.record_failure(account="alice", ip="198.51.100.7")
    assert limiter.failures_recent
    blocked = limiter.failures_blocked_now(account=None, ip="198.51.100.7")
    assert blocked is not None
    assert blocked.policy == FAILED_IP_POLICY


def test_ipv6_clients_are_counted_by_their_network() -> None:
    # A host is usually given a whole /64: counted per address, it could take a fresh
    # address for every request and never meet a per-IP limit.
    same = {ip_bucket(ip, 64) for ip in ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff")}
    assert same == {"2001:db8:1:2::/64"}
    assert ip_bucket("2001:db8:1:3::1", 64) == "2001:db8:1:3::/64"
    assert ip_bucket("2001:db8:1:2::1", 128) == "2001:db8:1:2::1/128"
    assert ip_bucket("2001:db8:1:2::1", 48) == ip_bucket("2001:db8:1:ffff::1", 48)
    assert ip_bucket("192.0.2.7", 64) == "192.0.2.7"
    assert ip_bucket("::ffff:192.0.2.7", 64) == "192.0.2.7"  # IPv4-mapped: the IPv4 host
    assert ip_bucket("not:an:address", 64) == "not:an:address"  # counted as given


async def test_failed_credentials_from_one_ipv6_network_are_throttled_together(
    make_memory: Make,
) -> None:
    limiter = make_memory(failed_auth_per_account="100/minute", failed_auth_per_ip="3/minute")
    for i in range(3):  # three addresses of one /64
        await limiter.record_failure(account=f"user{i}", ip=f"2001:db8:7:7::{i + 1:x}")
    assert await limiter.failures_blocked(account="fresh", ip="2001:db8:7:7::99") is not None
    assert await limiter.failures_blocked(account="fresh", ip="2001:db8:7:8::1") is None
