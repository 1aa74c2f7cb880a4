"""Users for HTTP Basic and login: username, argon2id hash, roles, disabled flag."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.model import Clock, system_clock
from bastion.store._db import RecordNotFound, db_errors, now_utc, tokens
from bastion.store.models import User

_users = cast(Table, User.__table__)


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    password_hash: str = field(repr=False)
    roles: tuple[str, ...]
    disabled: bool
    created_at: datetime
    updated_at: datetime


def _record(row: Any) -> UserRecord:
    return UserRecord(
        id=row.id,
        username=row.username,
        password_hash=row.password_hash,
        roles=tuple(row.roles or ()),
        disabled=bool(row.disabled),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _roles(roles: Iterable[str]) -> list[str]:
    return tokens("role", roles)


class UserStore:
    """Plain async functions over the ``users`` table; returns frozen records.

    Args:
        engine: from :func:`bastion.store.async_engine`.
        clock: seconds since the epoch (for ``created_at``/``updated_at``).
    """

    def __init__(self, engine: AsyncEngine, *, clock: Clock = system_clock) -> None:
        self._engine = engine
        self._clock = clock

    async def add(self, username: str, password_hash: str, roles: Iterable[str] = ()) -> UserRecord:
        """Create a user. Raises RecordExists if the username is taken."""
        now = now_utc(self._clock)
        values = {
            "username": username,
            "password_hash": password_hash,
            "roles": _roles(roles),
            "disabled": False,
            "created_at": now,
            "updated_at": now,
        }
        with db_errors(f"user {username!r}"):
            async with self._engine.begin() as conn:
                result = await conn.execute(insert(_users).values(values).returning(_users))
                return _record(result.one())

    async def get_by_username(self, username: str) -> UserRecord | None:
        with db_errors("user lookup"):
            async with self._engine.connect() as conn:
                result = await conn.execute(select(_users).where(_users.c.username == username))
                row = result.one_or_none()
        return None if row is None else _record(row)

    async def _update(self, username: str, **values: Any) -> UserRecord:
        values["updated_at"] = now_utc(self._clock)
        with db_errors(f"user {username!r}"):
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    update(_users)
                    .where(_users.c.username == username)
                    .values(values)
                    .returning(_users)
                )
                row = result.one_or_none()
        if row is None:
            raise RecordNotFound(f"no user {username!r}", detail=f"no user {username!r}")
        return _record(row)

    async def set_password(self, username: str, password_hash: str) -> UserRecord:
        return await self._update(username, password_hash=password_hash)

    async def disable(self, username: str) -> UserRecord:
        return await self._update(username, disabled=True)

    async def enable(self, username: str) -> UserRecord:
        return await self._update(username, disabled=False)

    async def set_roles(self, username: str, roles: Iterable[str]) -> UserRecord:
        return await self._update(username, roles=_roles(roles))

    async def list(self) -> tuple[UserRecord, ...]:
        """Every user, by username."""
        with db_errors("user list"):
            async with self._engine.connect() as conn:
                result = await conn.execute(select(_users).order_by(_users.c.username))
                return tuple(_record(row) for row in result)
