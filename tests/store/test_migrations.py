from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.store import async_engine, check_schema, migrate
from bastion.store.migrate import downgrade, head_revision
from bastion.store.models import Base


def _diff(connection: sa.Connection, metadata: sa.MetaData) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_matches_the_models(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.run_sync(_diff, Base.metadata) == []


async def test_the_comparison_sees_drift(engine: AsyncEngine) -> None:
    # The test above could not fail if compare_metadata saw nothing: show it sees a change.
    drifted = sa.MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    sa.Table("api_keys", drifted, sa.Column("extra", sa.Integer), extend_existing=True)
    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff, drifted)
    assert [d[0] for d in diff] == ["add_column"]


async def test_check_schema_is_true_at_head(db_url: str, engine: AsyncEngine) -> None:
    assert await check_schema(db_url) is True
    assert await check_schema(engine) is True


async def test_check_schema_false_for_empty_or_unreachable(tmp_path: Path) -> None:
    assert await check_schema(f"sqlite:///{tmp_path / 'empty.db'}") is False
    assert await check_schema("postgresql://nobody@127.0.0.1:1/none") is False


async def test_downgrade_then_upgrade_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    await migrate(url)
    await downgrade(url, "base")
    assert await check_schema(url) is False
    engine = async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    await engine.dispose()
    assert names == ["alembic_version"]
    await migrate(url)
    assert await check_schema(url) is True


async def test_migrate_is_idempotent_and_uses_wal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    await migrate(url)
    await migrate(url)
    engine = async_engine(url)
    async with engine.connect() as conn:
        mode = (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar()
        timeout = (await conn.execute(sa.text("PRAGMA busy_timeout"))).scalar()
        fks = (await conn.execute(sa.text("PRAGMA foreign_keys"))).scalar()
    await engine.dispose()
    assert (mode, timeout, fks) == ("wal", 5000, 1)
    assert head_revision() == "0003"


def test_migrate_needs_no_alembic_ini_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    asyncio.run(migrate("sqlite:///here.db"))
    assert (tmp_path / "here.db").exists()
    assert not (tmp_path / "alembic.ini").exists()
