"""Test databases: a fresh SQLite file, or a PostgreSQL database made for this session."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bastion.store import async_engine, migrate


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A uniquely named, migrated database on the server; dropped on exit."""
    name = f"bastion_test_{uuid.uuid4().hex[:16]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        asyncio.run(migrate(url))
        yield url
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def empty_tables(url: str) -> None:
    engine = async_engine(url)
    try:
        async with engine.begin() as conn:
            for table in ("api_keys", "users", "signing_keys"):
                await conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names
    finally:
        await engine.dispose()


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
