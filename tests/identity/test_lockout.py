"""Progressive login throttling: per account and per address, blocks that double and end,
the owner's usual address not locked out, unknown users alike, alerts in the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.gateway.app import GatewayApp
from bastion.identity._store import IdentityStore
from bastion.identity.lockout import ACCOUNT, ADDRESS, LoginThrottle, Policy, block_seconds
from bastion.keyring import Keyring
from bastion.store import async_engine, migrate
from tests._deploy import PASSWORD
from tests.identity._flows import password_login


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_blocks_double_then_cap() -> None:
    assert [block_seconds(ACCOUNT, n) for n in range(1, 9)] == [0, 0, 0, 0, 0, 5, 10, 20]
    assert block_seconds(ACCOUNT, 100) == ACCOUNT.max_block == 900
    assert block_seconds(ADDRESS, ADDRESS.free) == 0


@pytest.fixture
async def throttle(tmp_path: Path) -> AsyncIterator[tuple[LoginThrottle, Clock, list[Any], Any]]:
    url = f"sqlite:///{tmp_path / 't.db'}"
    await migrate(url)
    engine = async_engine(url)
    clock, events = Clock(), []
    small = Policy(free=2, first_block=10, max_block=60, window=600)
    yield (LoginThrottle(engine, emit=events.append, clock=clock, account=small),
           clock, events, engine)  # fmt: skip
    await engine.dispose()


async def test_account_block_progresses_and_ends(throttle: Any) -> None:
    limiter, clock, events, _ = throttle
    for n in range(2):
        await limiter.record_failure(account="alice", ip=f"10.0.0.{n}")
    assert await limiter.failures_blocked(account="alice", ip="10.0.0.9") is None
    await limiter.record_failure(account="alice", ip="10.0.0.3")  # third: blocked 10 s
    blocked = await limiter.failures_blocked(account="ALICE", ip="10.0.0.9")
    assert blocked is not None
    assert blocked.key == "account:alice"
    assert 10 <= blocked.retry_after <= 11
    assert events[-1]["kind"] == "login_lockout"
    assert "password" not in str(events)
    for _ in range(10):  # an attacker keeps failing: the block is capped, never forever
        await limiter.record_failure(account="alice", ip="10.0.0.3")
    capped = await limiter.failures_blocked(account="alice", ip="10.0.0.9")
    assert capped is not None
    assert capped.retry_after <= 61
    clock.now += 61
    assert await limiter.failures_blocked(account="alice", ip="10.0.0.9") is None
    # The same for a username that does not exist (no enumeration through lockout).
    for _ in range(3):
        await limiter.record_failure(account="nobody", ip="10.0.0.3")
    assert await limiter.failures_blocked(account="nobody", ip="10.0.0.9") is not None


async def test_the_owners_usual_address_is_not_locked_out(throttle: Any, tmp_path: Path) -> None:
    limiter, clock, _, engine = throttle
    store = IdentityStore(engine, Keyring(b"k" * 32), clock=clock)
    await store.record_event("alice", outcome="success", method="password",
                             client_ip="192.0.2.1", place="", device="")  # fmt: skip
    for _ in range(5):
        await limiter.record_failure(account="alice", ip="198.51.100.7")
    assert await limiter.failures_blocked(account="alice", ip="198.51.100.7") is not None
    assert await limiter.failures_blocked(account="alice", ip="192.0.2.1") is None
    await limiter.record_success(account="alice", ip="192.0.2.1")
    assert await limiter.failures_blocked(account="alice", ip="198.51.100.7") is None


async def test_address_block(throttle: Any) -> None:
    limiter, _, events, _ = throttle
    for n in range(ADDRESS.free + 1):
        await limiter.record_failure(account=f"user{n}", ip="198.51.100.8")  # spraying
    blocked = await limiter.failures_blocked(account="someone-else", ip="198.51.100.8")
    assert blocked is not None
    assert blocked.key == "ip:198.51.100.8"
    assert events[-1]["kind"] == "login_address_blocked"


async def test_login_page_locks_a_guesser_but_not_the_owner(app: GatewayApp, issuer: str) -> None:
    owner = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
                              base_url=issuer)  # fmt: skip
    assert (await password_login(owner)).status_code == 303  # a success from 127.0.0.1
    guesser = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("203.0.113.50", 2)), base_url=issuer
    )
    statuses = [(await password_login(guesser, password=f"guess {n}")).status_code
                for n in range(8)]  # fmt: skip
    assert statuses[:5] == [401] * 5
    assert 429 in statuses[5:]
    # Even the right password is refused to the guesser while the block lasts ...
    assert (await password_login(guesser, password=PASSWORD)).status_code == 429
    # ... but the owner, from the address she signs in from, is not locked out.
    owner.cookies.clear()
    assert (await password_login(owner)).status_code == 303
    await owner.aclose()
    await guesser.aclose()
