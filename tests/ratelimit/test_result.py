from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bastion.errors import RateLimited
from bastion.ratelimit import LimitResult


def test_allowed_result_has_no_retry_after() -> None:
    result = LimitResult(True, "route:orders", 100, 42, 17, 60)
    assert result.headers() == [
        ("RateLimit-Policy", '"route:orders";q=100;w=60'),
        ("RateLimit", '"route:orders";r=42;t=17'),
    ]


def test_policy_name_is_a_valid_sf_string() -> None:
    result = LimitResult(True, 'a"b\\c', 1, 0, 1, 1)
    assert result.headers()[0] == ("RateLimit-Policy", '"a\\"b\\\\c";q=1;w=1')


def test_denied_result_renders_as_a_429_error() -> None:
    error = LimitResult(False, "ip", 10, 0, 7, 60).error()
    assert isinstance(error, RateLimited)
    assert (error.status, error.retry_after) == (429, 7)
    assert ("Retry-After", "7") in error.headers
    assert "ip" in error.reason


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 10**6))
def test_retry_after_is_never_earlier_than_t(remaining: int, reset: int, window: int) -> None:
    headers = dict(LimitResult(False, "ip", 5, remaining, reset, window).headers())
    t = int(headers["RateLimit"].rsplit("t=", 1)[1])
    assert int(headers["Retry-After"]) >= max(t, 1)
