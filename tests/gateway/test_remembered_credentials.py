"""The gateway remembers an API key it accepted without I/O (under a digest of the query
and the key's headers) and skips parsing and checking it again. Each way the key could
stop being good must end that, on the very next request."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bastion.config import AuthMethod
from bastion.credentials.apikey import ApiKeyAuthenticator, ApiKeys
from bastion.gateway import core
from bastion.gateway.runtime import Runtime
from bastion.model import RequestView
from tests._deploy import Deployment, make_deployment
from tests.gateway._fakes import Counted

IP = "203.0.113.30"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def deployment(tmp_path: Path, upstream: str) -> Deployment:
    return await make_deployment(
        tmp_path / "d", upstream, rate_limits={"failed_auth_per_ip": "2/minute"}
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def runtime(deployment: Deployment, clock: Clock) -> AsyncIterator[Runtime]:
    rt = await Runtime.start(deployment.config, clock=clock)
    yield rt
    await rt.aclose()


def keys_of(rt: Runtime) -> ApiKeys:
    authenticator = rt.gateway.authenticators[AuthMethod.API_KEY]
    assert isinstance(authenticator, ApiKeyAuthenticator)
    return authenticator.keys


def view(query: str = "", ip: str = IP, **headers: str) -> RequestView:
    lowered = {k.replace("_", "-").lower(): v for k, v in headers.items()}
    return RequestView(
        method="GET", path="/api/orders/1", query=query, host="api.test", headers=lowered,
        client_ip=ip,
    )  # fmt: skip


async def decide(rt: Runtime, request: RequestView) -> tuple[int, str]:
    decision = await rt.gateway.decide(request, "forward_auth")
    return decision.status, decision.reason


async def remembered(rt: Runtime, key: str) -> None:
    """Accept ``key`` three times: read and checked, checked from the cached record (and
    remembered), then from what the gateway remembered."""
    keys = keys_of(rt)
    checks = 0
    real_hash = keys.hash

    def counted(token: str) -> str:
        nonlocal checks
        checks += 1
        return real_hash(token)

    keys.hash = counted  # type: ignore[method-assign]
    for _ in range(3):
        assert await decide(rt, view(x_api_key=key)) == (200, "ok")
    keys.hash = real_hash  # type: ignore[method-assign]
    assert checks == 2  # the third request checked no HMAC
    assert len(rt.gateway._known) == 1


async def test_a_remembered_key_is_refused_once_revoked(
    deployment: Deployment, runtime: Runtime
) -> None:
    await remembered(runtime, deployment.api_key)
    key_id = keys_of(runtime).format.parse(deployment.api_key).key_id
    await keys_of(runtime).revoke(key_id)
    assert await decide(runtime, view(x_api_key=deployment.api_key)) == (401, "api_key_revoked")


async def test_a_remembered_key_is_refused_once_expired(runtime: Runtime, clock: Clock) -> None:
    keys = keys_of(runtime)
    # Expiring well within cache_seconds: the cached record is still fresh at expiry.
    expires = datetime.fromtimestamp(int(clock.now) + 10, UTC)
    issued = await keys.issue(name="short", subject="carol", scopes=["read"], expires_at=expires)
    await remembered(runtime, issued.key)
    clock.now = expires.timestamp() - 0.5
    assert await decide(runtime, view(x_api_key=issued.key)) == (200, "ok")
    clock.now = expires.timestamp()
    assert await decide(runtime, view(x_api_key=issued.key)) == (401, "api_key_expired")


async def test_a_remembered_key_is_read_again_after_cache_seconds(
    deployment: Deployment, runtime: Runtime, clock: Clock
) -> None:
    keys = keys_of(runtime)
    store = keys.store = Counted(keys.store, "get_by_key_id")  # type: ignore[assignment]
    await remembered(runtime, deployment.api_key)
    assert store.calls == 1
    clock.now += deployment.config.api_keys.cache_seconds - 1
    assert await decide(runtime, view(x_api_key=deployment.api_key)) == (200, "ok")
    assert store.calls == 1
    # Another instance may have revoked it: past cache_seconds the record is read again.
    clock.now += 2
    assert await decide(runtime, view(x_api_key=deployment.api_key)) == (200, "ok")
    assert store.calls == 2


async def test_a_remembered_key_is_dropped_when_another_instance_reports_a_change(
    deployment: Deployment, runtime: Runtime
) -> None:
    keys = keys_of(runtime)
    store = keys.store = Counted(keys.store, "get_by_key_id")  # type: ignore[assignment]
    await remembered(runtime, deployment.api_key)
    keys.invalidate(keys.format.parse(deployment.api_key).key_id)
    assert await decide(runtime, view(x_api_key=deployment.api_key)) == (200, "ok")
    assert store.calls == 2


async def test_each_use_of_a_remembered_key_counts_as_its_last_use(
    deployment: Deployment, runtime: Runtime, clock: Clock
) -> None:
    await remembered(runtime, deployment.api_key)
    clock.now += 5
    assert await decide(runtime, view(x_api_key=deployment.api_key)) == (200, "ok")
    key_id = keys_of(runtime).format.parse(deployment.api_key).key_id
    assert keys_of(runtime)._used[key_id] == clock.now


async def test_the_same_key_with_another_query_or_header_is_decided_afresh(
    deployment: Deployment, runtime: Runtime
) -> None:
    key = deployment.api_key
    await remembered(runtime, key)
    # (each from its own address: the failed-credential throttle is another test's)
    assert await decide(runtime, view(f"api_key={key}", "198.51.100.1", x_api_key=key)) == (
        401,
        "api_key_in_query",
    )
    other = deployment.reports_key
    both = view(ip="198.51.100.2", x_api_key=key, authorization=f"ApiKey {other}")
    assert await decide(runtime, both) == (
        401,
        "api_key_ambiguous",
    )
    # A JWT beside it is chosen first (the route lists jwt before api_key).
    jwt_too = view(ip="198.51.100.3", x_api_key=key, authorization="Bearer x.y.z")
    assert await decide(runtime, jwt_too) == (
        401,
        "malformed",  # the JWT's reason
    )


async def test_failed_credentials_throttle_a_remembered_key_too(
    deployment: Deployment, runtime: Runtime
) -> None:
    await remembered(runtime, deployment.api_key)
    bad = deployment.api_key[:-6] + "AAAAAA"
    for _ in range(2):
        status, _ = await decide(runtime, view(x_api_key=bad))
        assert status == 401
    assert await decide(runtime, view(x_api_key=deployment.api_key)) == (
        429,
        "failed_auth_throttled",
    )


async def test_what_the_gateway_remembers_is_bounded_and_holds_no_key(
    deployment: Deployment, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "_KNOWN_MAX", 3)
    for n in range(7):
        assert await decide(runtime, view(f"page={n}", x_api_key=deployment.api_key)) == (
            200,
            "ok",
        )
        assert len(runtime.gateway._known) <= 3
    held = repr(list(runtime.gateway._known))
    assert deployment.api_key not in held
    assert "page=" not in held
