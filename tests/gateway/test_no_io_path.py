"""The decision core answers most requests without I/O (in-process counters, a credential
verified before) and awaits only when it must. Both ways must decide alike: the same
request sequence through a normal gateway and through one whose limiter claims to be
shared (so every step is awaited) gives the same statuses, reasons, headers and counts."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bastion.gateway.core import Gateway
from bastion.gateway.decision import Decision
from bastion.gateway.runtime import Runtime
from bastion.model import RequestView
from bastion.ratelimit import RateLimiter
from tests._deploy import Deployment, make_deployment
from tests.gateway._fakes import Counted

IP_A, IP_B = "203.0.113.10", "203.0.113.20"


class Awaited:
    """A RateLimiter that says its counters are shared: the core must await every call."""

    in_process = False

    def __init__(self, inner: RateLimiter) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name.endswith("_now"):
            raise AssertionError(f"{name} called on a limiter that is not in process")
        return getattr(self._inner, name)


@pytest.fixture
async def deployment(tmp_path: Path, upstream: str) -> Deployment:
    rates = {
        "per_ip": "100000/minute",
        "per_principal": "6/minute",
        "failed_auth_per_ip": "3/minute",
    }
    return await make_deployment(tmp_path / "d", upstream, rate_limits=rates)


@pytest.fixture
async def runtimes(deployment: Deployment) -> AsyncIterator[tuple[Runtime, Runtime]]:
    first = await Runtime.start(deployment.config)
    second = await Runtime.start(deployment.config)
    yield first, second
    await first.aclose()
    await second.aclose()


def _gateway(runtime: Runtime, *, awaited: bool) -> tuple[Gateway, dict[str, Counted]]:
    gw = runtime.gateway
    counted = {m.value: Counted(a, "authenticate") for m, a in gw.authenticators.items()}
    limiter = Awaited(runtime.limiter) if awaited else runtime.limiter  # type: ignore[arg-type]
    gateway = Gateway(
        gw.config,
        authenticators={m: counted[m.value] for m in gw.authenticators},  # type: ignore[misc]
        limiter=limiter,  # type: ignore[arg-type]
        observer=gw.observer,
        signer=gw.signer,
    )
    return gateway, counted


def _view(path: str, ip: str, query: str = "", **headers: str) -> RequestView:
    lowered = {k.replace("_", "-").lower(): v for k, v in headers.items()}
    return RequestView(
        method="GET", path=path, query=query, host="api.test", headers=lowered, client_ip=ip
    )


def _comparable(decision: Decision) -> tuple[Any, ...]:
    def strip(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        # The reset time may cross a second between the two runs; the request id and
        # the signed assertion differ by design.
        return [
            (k, re.sub(r";t=\d+", "", v))
            for k, v in headers
            if not k.lower().endswith(("request-id", "assertion"))
        ]

    principal = decision.principal.subject if decision.principal else None
    return (
        decision.status,
        decision.reason,
        principal,
        strip(decision.headers),
        strip(decision.upstream_headers),
    )


async def test_no_io_and_awaited_paths_decide_alike(
    deployment: Deployment, runtimes: tuple[Runtime, Runtime]
) -> None:
    exp = int(time.time()) + 600
    good = deployment.jwt(exp=exp, jti="j-good")
    kept = deployment.jwt(exp=exp, jti="j-kept", sub="bob")
    bearer = f"Bearer {good}"
    steps: list[RequestView | str] = [
        _view("/api/orders/1", IP_A, authorization=bearer),
        _view("/api/orders/2", IP_A, authorization=bearer),  # verified before
        _view("/api/orders/3", IP_A, x_api_key=deployment.api_key),
        _view("/api/orders/3", IP_A, x_api_key=deployment.api_key),  # key record cached
        _view("/api/reports/1", IP_A, authorization=bearer),  # 403: no reports:read
        _view("/api/admin/1", IP_A, x_api_key=deployment.api_key),  # 403: no admin role
        _view("/api/reports/1", IP_A, x_api_key=deployment.reports_key),
        _view("/api/orders/4", IP_A),  # 401: no credentials
        # Credentials verified before, but one also in the URL: refused both ways.
        _view("/api/orders/4", IP_A, "access_token=x", authorization=bearer),
        _view("/api/orders/4", IP_A, f"api_key={deployment.api_key}", x_api_key=deployment.api_key),
        _view("/public/x", IP_A),
        *[_view("/api/orders/5", IP_A, authorization=bearer) for _ in range(5)],  # 429 principal
        _view("/api/orders/6", IP_B, authorization=f"Bearer {kept}"),
        "revoke j-kept",
        _view("/api/orders/6", IP_B, authorization=f"Bearer {kept}"),  # 401: revoked
        *[_view("/api/orders/7", IP_B, authorization="Bearer x.y.z") for _ in range(3)],
        _view("/api/orders/8", IP_B, x_api_key=deployment.api_key),  # 429: IP throttled
    ]
    fast_rt, slow_rt = runtimes
    fast, fast_calls = _gateway(fast_rt, awaited=False)
    slow, slow_calls = _gateway(slow_rt, awaited=True)
    seen = []
    for step in steps:
        if isinstance(step, str):
            for rt in runtimes:
                rt.revocations.revoke_jti(step.split()[1], exp)
            continue
        a = await fast.decide(step, "forward_auth")
        b = await slow.decide(step, "forward_auth")
        assert _comparable(a) == _comparable(b), step.path
        seen.append((a.status, a.reason))
    assert {status for status, _ in seen} == {200, 401, 403, 429}
    reasons = {reason for _, reason in seen}
    assert {"rate_limited:principal", "failed_auth_throttled", "revoked"} <= reasons
    assert {"token_in_query", "api_key_in_query"} <= reasons
    # The counters the two consumed are the same keys with the same counts.
    fast_windows = fast_rt.limiter.backend._windows  # type: ignore[attr-defined]
    slow_windows = slow_rt.limiter.backend._windows  # type: ignore[attr-defined]
    assert {k: v[1] for k, v in fast_windows.items()} == {k: v[1] for k, v in slow_windows.items()}
    # ...and the normal gateway answered repeat credentials without awaiting a verification.
    fast_awaited = sum(c.calls for c in fast_calls.values())
    slow_awaited = sum(c.calls for c in slow_calls.values())
    assert fast_awaited < slow_awaited - 8
