"""API key records: only the public ``key_id`` and an HMAC of the key are stored."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bastion.model import Clock, system_clock
from bastion.store._db import RecordExists, RecordNotFound, db_errors, now_utc, tokens
from bastion.store.models import ApiKey

_keys = cast(Table, ApiKey.__table__)


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    key_hash: str = field(repr=False)
    name: str
    subject: str
    scopes: tuple[str, ...]
    roles: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    replaced_by: str | None

    def status(self, now: datetime) -> str:
        """``revoked``, ``expired``, ``rotating`` (replaced, still in overlap) or ``active``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        if self.replaced_by is not None:
            return "rotating"
        return "active"


def _record(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row.key_id,
        key_hash=row.key_hash,
        name=row.name,
        subject=row.subject,
        scopes=tuple(row.scopes or ()),
        roles=tuple(row.roles or ()),
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        replaced_by=row.replaced_by,
    )


def _missing(key_id: str) -> RecordNotFound:
    return RecordNotFound(f"no api key {key_id!r}", detail=f"no API key {key_id!r}")


class ApiKeyStore:
    """Plain async functions over the ``api_keys`` table; returns frozen records.

    Key generation and hashing live in :mod:`bastion.credentials.apikey`; this class only
    persists what it is given.

    Args:
        engine: from :func:`bastion.store.async_engine`.
        clock: seconds since the epoch.
    """

    def __init__(self, engine: AsyncEngine, *, clock: Clock = system_clock) -> None:
        self._engine = engine
        self._clock = clock

    async def create(
        self,
        *,
        key_id: str,
        key_hash: str,
        name: str,
        subject: str,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        expires_at: datetime | None = None,
    ) -> ApiKeyRecord:
        """Store a new key. Raises RecordExists if ``key_id`` is taken."""
        values = {
            "key_id": key_id,
            "key_hash": key_hash,
            "name": name,
            "subject": subject,
            "scopes": tokens("scope", scopes),
            "roles": tokens("role", roles),
            "created_at": now_utc(self._clock),
            "expires_at": expires_at,
        }
        with db_errors(f"api key {key_id!r}"):
            async with self._engine.begin() as conn:
                return await self._insert(conn, values)

    @staticmethod
    async def _insert(conn: AsyncConnection, values: dict[str, Any]) -> ApiKeyRecord:
        result = await conn.execute(insert(_keys).values(values).returning(_keys))
        return _record(result.one())

    async def get_by_key_id(self, key_id: str) -> ApiKeyRecord | None:
        with db_errors("api key lookup"):
            async with self._engine.connect() as conn:
                result = await conn.execute(select(_keys).where(_keys.c.key_id == key_id))
                row = result.one_or_none()
        return None if row is None else _record(row)

    async def revoke(self, key_id: str) -> ApiKeyRecord:
        """Revoke a key now; revoking twice keeps the first time. Raises RecordNotFound."""
        with db_errors(f"api key {key_id!r}"):
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(_keys)
                    .where(_keys.c.key_id == key_id, _keys.c.revoked_at.is_(None))
                    .values(revoked_at=now_utc(self._clock))
                )
                row = (
                    await conn.execute(select(_keys).where(_keys.c.key_id == key_id))
                ).one_or_none()
        if row is None:
            raise _missing(key_id)
        return _record(row)

    async def rotate(
        self,
        key_id: str,
        *,
        new_key_id: str,
        new_key_hash: str,
        overlap: timedelta,
        new_expires_at: datetime | None,
    ) -> tuple[ApiKeyRecord, ApiKeyRecord]:
        """Replace a key by a new one with the same name, subject, scopes and roles.

        The old key keeps working until ``min(its expiry, now + overlap)``.

        Returns:
            ``(old, new)`` as stored after the change.

        Raises:
            RecordNotFound: no such key.
            RecordExists: the key is revoked, expired or already rotated.
        """
        now = now_utc(self._clock)
        with db_errors(f"api key {key_id!r}"):
            async with self._engine.begin() as conn:
                row = (
                    await conn.execute(
                        select(_keys).where(_keys.c.key_id == key_id).with_for_update()
                    )
                ).one_or_none()
                if row is None:
                    raise _missing(key_id)
                old = _record(row)
                if old.status(now) != "active":
                    raise RecordExists(
                        f"rotate {key_id!r}: key is {old.status(now)}",
                        detail=f"API key {key_id!r} is {old.status(now)} and cannot be rotated",
                    )
                new = await self._insert(
                    conn,
                    {
                        "key_id": new_key_id,
                        "key_hash": new_key_hash,
                        "name": old.name,
                        "subject": old.subject,
                        "scopes": list(old.scopes),
                        "roles": list(old.roles),
                        "created_at": now,
                        "expires_at": new_expires_at,
                    },
                )
                ends = now + overlap
                if old.expires_at is not None:
                    ends = min(ends, old.expires_at)
                result = await conn.execute(
                    update(_keys)
                    .where(_keys.c.key_id == key_id)
                    .values(replaced_by=new_key_id, expires_at=ends)
                    .returning(_keys)
                )
                return _record(result.one()), new

    async def touch_last_used(self, used: Mapping[str, datetime]) -> None:
        """Record ``last_used_at`` for many keys in one statement; times only move forward."""
        if not used:
            return
        params = [{"k": key_id, "t": at} for key_id, at in used.items()]
        stmt = (
            update(_keys)
            .where(
                and_(
                    _keys.c.key_id == bindparam("k"),
                    or_(_keys.c.last_used_at.is_(None), _keys.c.last_used_at < bindparam("t")),
                )
            )
            .values(last_used_at=bindparam("t"))
        )
        with db_errors("api key last-used"):
            async with self._engine.begin() as conn:
                await conn.execute(stmt, params)

    async def list(self, *, subject: str | None = None) -> tuple[ApiKeyRecord, ...]:
        """Every key (or one subject's), oldest first."""
        stmt = select(_keys).order_by(_keys.c.created_at, _keys.c.id)
        if subject is not None:
            stmt = stmt.where(_keys.c.subject == subject)
        with db_errors("api key list"):
            async with self._engine.connect() as conn:
                return tuple(_record(row) for row in await conn.execute(stmt))
