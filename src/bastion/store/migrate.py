"""Schema migrations (Alembic, shipped in the package) and the readiness check.

Alembic is configured in code, so no ``alembic.ini`` is needed in the working folder.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.errors import Unavailable
from bastion.store.engine import async_engine

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"
# Alembic itself (~11 MB resident) is imported only to migrate: a serving gateway reads
# the revision with one query and knows the head from the version files' own headers.
_REVISION = re.compile(r'^revision(?:: str)? = "([^"]+)"', re.MULTILINE)
_DOWN = re.compile(r'^down_revision(?:: str \| None)? = (?:"([^"]+)"|None)', re.MULTILINE)


def alembic_config(url: str | None = None) -> AlembicConfig:
    """An Alembic config pointing at bastion's migrations (for ``command.*`` calls)."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        cfg.attributes["url"] = url
    return cfg


@cache
def head_revision() -> str | None:
    """The newest revision shipped in this package: the one no other revision follows."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        source = script.read_text(encoding="utf-8")
        found, down = _REVISION.search(source), _DOWN.search(source)
        if found:
            revisions.add(found.group(1))
        if down and down.group(1):
            parents.add(down.group(1))
    heads = revisions - parents
    if len(heads) > 1:
        raise RuntimeError(f"several migration heads: {sorted(heads)}")
    return heads.pop() if heads else None


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def _downgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


async def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (default: the newest).

    Raises:
        Unavailable: the database cannot be reached or the migration failed.
    """
    engine = async_engine(url, query_timeout=None)  # a migration may take its time
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, revision)
    except (SQLAlchemyError, OSError) as exc:
        raise Unavailable(f"migration failed: {exc.__class__.__name__}: {exc}") from exc
    finally:
        await engine.dispose()


async def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``"base"`` drops everything)."""
    engine = async_engine(url, query_timeout=None)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_downgrade, revision)
    finally:
        await engine.dispose()


def _current(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
    found = list(versions)
    return found[0] if len(found) == 1 else None


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
