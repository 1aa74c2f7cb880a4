"""Schema migrations (Alembic, shipped in the package) and the readiness check.

Alembic is configured in code, so no ``alembic.ini`` is needed in the working folder.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.errors import Unavailable
from bastion.store.engine import async_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> AlembicConfig:
    """An Alembic config pointing at bastion's migrations (for ``command.*`` calls)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        cfg.attributes["url"] = url
    return cfg


@cache
def head_revision() -> str | None:
    """The newest revision shipped in this package."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def _downgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


async def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (default: the newest).

    Raises:
        Unavailable: the database cannot be reached or the migration failed.
    """
    engine = async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, revision)
    except (SQLAlchemyError, OSError) as exc:
        raise Unavailable(f"migration failed: {exc.__class__.__name__}: {exc}") from exc
    finally:
        await engine.dispose()


async def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``"base"`` drops everything)."""
    engine = async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_downgrade, revision)
    finally:
        await engine.dispose()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


async def check_schema(url: str | AsyncEngine) -> bool:
    """Whether the database is reachable and at the newest revision (for ``/readyz``).

    Pass the running engine to reuse its pool; a URL opens (and closes) a new engine.
    Never raises.
    """
    engine = async_engine(url) if isinstance(url, str) else url
    try:
        return await current_revision(engine) == head_revision()
    except (SQLAlchemyError, OSError):
        return False
    finally:
        if isinstance(url, str):
            await engine.dispose()
