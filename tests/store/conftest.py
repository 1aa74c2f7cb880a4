from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.store import async_engine, migrate
from tests.store._db import FakeClock, empty_tables, postgres_database


@pytest.fixture(scope="session")
def pg_database(pg_url: str) -> Iterator[str]:
    with postgres_database(pg_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a new SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'bastion.db'}"
        asyncio.run(migrate(url))
        yield url
        return
    url = request.getfixturevalue("pg_database")
    yield url
    asyncio.run(empty_tables(url))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = async_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
