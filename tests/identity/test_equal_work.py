"""The login form does the same work for an unknown user as for a wrong password
(DESIGN.md: unknown user and wrong password look the same, in body and in time). Held
structurally, not by a stopwatch: the same SQL statements, in the same order, and one
argon2 verification each. Issue 15: a real user's failure cost an extra insert (~2-3 ms),
enough to tell which usernames exist."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from bastion.credentials._passwords import Passwords
from bastion.gateway.app import GatewayApp
from bastion.gateway.runtime import Runtime
from bastion.identity._store import IdentityStore
from bastion.keyring import Keyring
from bastion.store import async_engine, migrate
from tests._deploy import Deployment
from tests.identity._flows import relayed
from tests.oauth._helpers import hidden

_SPACE = re.compile(r"\s+")


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """The SQL the deployment runs meanwhile (without parameter values)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(_SPACE.sub(" ", statement).strip())

    engine = runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which argon2 verification each attempt ran (the real one or the dummy)."""
    calls: list[str] = []
    real, dummy = Passwords.verify, Passwords.verify_dummy

    async def verify(self: Passwords, *args: Any) -> bool:
        calls.append("verify")
        return await real(self, *args)

    async def verify_dummy(self: Passwords, *args: Any) -> None:
        calls.append("verify")  # the same cost by design: one argon2id verification
        await dummy(self, *args)

    monkeypatch.setattr(Passwords, "verify", verify)
    monkeypatch.setattr(Passwords, "verify_dummy", verify_dummy)
    return calls


async def failed_login(app: GatewayApp, issuer: str, client: str, username: str) -> list[str]:
    """The statements of one failed password POST (a fresh client: its own counts)."""
    assert app.runtime is not None
    async with relayed(app, issuer, client) as agent:
        page = await agent.get("/oauth2/login")
        form = {
            "csrf": hidden(page.text, "csrf"),
            "tx": hidden(page.text, "tx"),
            "step": "password",
            "username": username,
            "password": "not the password",
        }
        with statements(app.runtime) as seen:
            answer = await agent.post("/oauth2/login", data=form)
    assert answer.status_code == 401
    assert "Wrong username or password." in answer.text
    return seen


async def test_a_wrong_password_costs_what_an_unknown_user_costs(
    app: GatewayApp, issuer: str, deployment: Deployment, verifications: list[str]
) -> None:
    wrong_password = await failed_login(app, issuer, "203.0.113.1", "alice")
    unknown_user = await failed_login(app, issuer, "203.0.113.2", "nobody")
    assert wrong_password == unknown_user
    assert any(s.startswith("INSERT INTO login_events") for s in wrong_password)
    assert verifications == ["verify", "verify"]


async def test_old_events_go_whoever_they_were_recorded_for(tmp_path: Path) -> None:
    # Failed sign-ins are recorded under names nobody has too: those rows must not stay
    # forever because the name never signs in again.
    url = f"sqlite:///{tmp_path / 'e.db'}"
    await migrate(url)
    engine = async_engine(url)
    try:
        clock = Clock()
        store = IdentityStore(engine, Keyring(b"k" * 32), clock=clock)
        fields = {"outcome": "failure", "method": "password", "client_ip": "", "place": "",
                  "device": ""}  # fmt: skip
        await store.record_event("no-such-user", **fields)
        await store.record_event("alice", **fields)
        clock.now += 91 * 86400
        await store.record_event("alice", **fields)
        assert await store.events("no-such-user") == []
        assert len(await store.events("alice")) == 1
    finally:
        await engine.dispose()


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now
