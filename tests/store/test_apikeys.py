from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.store import ApiKeyStore, RecordExists, RecordNotFound
from tests.store._db import FakeClock


@pytest.fixture
def keys(engine: AsyncEngine, clock: FakeClock) -> ApiKeyStore:
    return ApiKeyStore(engine, clock=clock)


def at(clock: FakeClock, plus: float = 0) -> datetime:
    return datetime.fromtimestamp(clock.now + plus, UTC)


async def _make(keys: ApiKeyStore, key_id: str = "aaaaaaaaaaaa", **kw: object) -> None:
    await keys.create(
        key_id=key_id,
        key_hash="0" * 64,
        name=str(kw.get("name", "ci")),
        subject="svc-ci",
        scopes=["write", "read"],
        roles=["deployer"],
        expires_at=kw.get("expires_at"),  # type: ignore[arg-type]
    )


async def test_create_and_get(keys: ApiKeyStore, clock: FakeClock) -> None:
    await _make(keys, expires_at=at(clock, 3600))
    rec = await keys.get_by_key_id("aaaaaaaaaaaa")
    assert rec is not None
    assert (rec.name, rec.subject, rec.scopes, rec.roles) == (
        "ci",
        "svc-ci",
        ("read", "write"),
        ("deployer",),
    )
    assert rec.expires_at == at(clock, 3600)
    assert rec.expires_at.tzinfo is not None
    assert rec.status(at(clock)) == "active"
    assert rec.status(at(clock, 3600)) == "expired"
    assert "0000" not in repr(rec)


async def test_duplicate_key_id_conflicts(keys: ApiKeyStore) -> None:
    await _make(keys)
    with pytest.raises(RecordExists):
        await _make(keys)


async def test_revoke_keeps_first_time(keys: ApiKeyStore, clock: FakeClock) -> None:
    await _make(keys)
    first = await keys.revoke("aaaaaaaaaaaa")
    clock.advance(10)
    second = await keys.revoke("aaaaaaaaaaaa")
    assert first.revoked_at == second.revoked_at == at(clock, -10)
    assert second.status(at(clock)) == "revoked"
    with pytest.raises(RecordNotFound):
        await keys.revoke("bbbbbbbbbbbb")


async def test_rotate_sets_overlap_and_link(keys: ApiKeyStore, clock: FakeClock) -> None:
    await _make(keys, expires_at=at(clock, 10 * 86400))
    old, new = await keys.rotate(
        "aaaaaaaaaaaa",
        new_key_id="bbbbbbbbbbbb",
        new_key_hash="1" * 64,
        overlap=timedelta(hours=24),
        new_expires_at=None,
    )
    assert old.replaced_by == "bbbbbbbbbbbb"
    assert old.expires_at == at(clock, 86400)
    assert old.status(at(clock)) == "rotating"
    assert (new.name, new.subject, new.scopes, new.roles) == (
        old.name,
        old.subject,
        old.scopes,
        old.roles,
    )
    assert new.expires_at is None
    assert await keys.get_by_key_id("aaaaaaaaaaaa") == old


async def test_rotate_never_extends_expiry(keys: ApiKeyStore, clock: FakeClock) -> None:
    await _make(keys, expires_at=at(clock, 3600))
    old, _ = await keys.rotate(
        "aaaaaaaaaaaa",
        new_key_id="bbbbbbbbbbbb",
        new_key_hash="1" * 64,
        overlap=timedelta(days=7),
        new_expires_at=None,
    )
    assert old.expires_at == at(clock, 3600)


@pytest.mark.parametrize("state", ["revoked", "rotated", "expired"])
async def test_rotate_refuses_inactive_keys(
    keys: ApiKeyStore, clock: FakeClock, state: str
) -> None:
    await _make(keys, expires_at=at(clock, 60))
    if state == "revoked":
        await keys.revoke("aaaaaaaaaaaa")
    elif state == "rotated":
        await keys.rotate(
            "aaaaaaaaaaaa",
            new_key_id="cccccccccccc",
            new_key_hash="2" * 64,
            overlap=timedelta(seconds=30),
            new_expires_at=None,
        )
        assert (await keys.get_by_key_id("aaaaaaaaaaaa")).status(at(clock)) == "rotating"  # type: ignore[union-attr]
    else:
        clock.advance(61)
    with pytest.raises(RecordExists):
        await keys.rotate(
            "aaaaaaaaaaaa",
            new_key_id="bbbbbbbbbbbb",
            new_key_hash="1" * 64,
            overlap=timedelta(hours=1),
            new_expires_at=None,
        )
    assert await keys.get_by_key_id("bbbbbbbbbbbb") is None


async def test_rotate_missing_key(keys: ApiKeyStore) -> None:
    with pytest.raises(RecordNotFound):
        await keys.rotate(
            "zzzzzzzzzzzz",
            new_key_id="bbbbbbbbbbbb",
            new_key_hash="1" * 64,
            overlap=timedelta(hours=1),
            new_expires_at=None,
        )


async def test_touch_last_used_batch_only_moves_forward(
    keys: ApiKeyStore, clock: FakeClock
) -> None:
    await _make(keys, "aaaaaaaaaaaa")
    await _make(keys, "bbbbbbbbbbbb")
    await keys.touch_last_used({"aaaaaaaaaaaa": at(clock, 5), "bbbbbbbbbbbb": at(clock, 7)})
    await keys.touch_last_used({"aaaaaaaaaaaa": at(clock, 1), "unknownxxxxx": at(clock, 1)})
    await keys.touch_last_used({})
    a = await keys.get_by_key_id("aaaaaaaaaaaa")
    b = await keys.get_by_key_id("bbbbbbbbbbbb")
    assert a is not None
    assert b is not None
    assert (a.last_used_at, b.last_used_at) == (at(clock, 5), at(clock, 7))


async def test_list_all_and_by_subject(keys: ApiKeyStore, clock: FakeClock) -> None:
    await _make(keys, "aaaaaaaaaaaa")
    clock.advance(1)
    await keys.create(key_id="bbbbbbbbbbbb", key_hash="1" * 64, name="x", subject="other")
    assert [k.key_id for k in await keys.list()] == ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]
    assert [k.key_id for k in await keys.list(subject="other")] == ["bbbbbbbbbbbb"]
