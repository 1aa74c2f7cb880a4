from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.errors import Unavailable
from bastion.store import RecordExists, RecordNotFound, UserStore, async_engine
from tests.store._db import FakeClock


@pytest.fixture
def users(engine: AsyncEngine, clock: FakeClock) -> UserStore:
    return UserStore(engine, clock=clock)


async def test_add_and_get(users: UserStore, clock: FakeClock) -> None:
    added = await users.add("alice", "$argon2id$x", roles=["b", "a", "a"])
    got = await users.get_by_username("alice")
    assert got == added
    assert got.roles == ("a", "b")
    assert got.disabled is False
    assert got.created_at == datetime.fromtimestamp(clock.now, UTC)
    assert got.created_at.tzinfo is not None
    assert "argon2" not in repr(got)


async def test_unknown_user_is_none(users: UserStore) -> None:
    assert await users.get_by_username("nobody") is None


async def test_duplicate_username_conflicts(users: UserStore) -> None:
    await users.add("alice", "h")
    with pytest.raises(RecordExists):
        await users.add("alice", "h2")


async def test_usernames_are_case_sensitive_and_exact(users: UserStore) -> None:
    await users.add("alice", "h")
    assert await users.get_by_username("Alice") is None
    assert await users.get_by_username("alice ") is None


async def test_set_password_disable_enable_roles(users: UserStore, clock: FakeClock) -> None:
    await users.add("bob", "h1")
    clock.advance(60)
    changed = await users.set_password("bob", "h2")
    assert changed.password_hash == "h2"
    assert changed.updated_at > changed.created_at
    assert (await users.disable("bob")).disabled is True
    assert (await users.get_by_username("bob")).disabled is True  # type: ignore[union-attr]
    assert (await users.enable("bob")).disabled is False
    assert (await users.set_roles("bob", ["ops"])).roles == ("ops",)


@pytest.mark.parametrize("op", ["set_password", "disable", "enable", "set_roles"])
async def test_changing_a_missing_user_is_not_found(users: UserStore, op: str) -> None:
    args = {"set_password": ("h",), "set_roles": (["r"],)}.get(op, ())
    with pytest.raises(RecordNotFound):
        await getattr(users, op)("ghost", *args)


async def test_list_is_sorted(users: UserStore) -> None:
    for name in ("carol", "alice", "bob"):
        await users.add(name, "h")
    assert [u.username for u in await users.list()] == ["alice", "bob", "carol"]


async def test_unreachable_database_is_unavailable() -> None:
    engine = async_engine("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(Unavailable):
        await UserStore(engine).get_by_username("alice")
    await engine.dispose()
