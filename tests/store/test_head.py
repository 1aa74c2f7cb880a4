"""The serving path reads revisions without Alembic; it must agree with Alembic."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from bastion.store import async_engine, migrate
from bastion.store.migrate import alembic_config, current_revision, head_revision


def test_head_revision_matches_alembic() -> None:
    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


async def test_current_revision_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    engine = async_engine(url)
    try:
        assert await current_revision(engine) is None  # empty database
        await migrate(url)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()
