"""Open config + keyring + database in one call: the CLI and the server share this."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.config import Config, load_config
from bastion.errors import ConfigError, Unavailable
from bastion.keyring import Keyring, load_keyring
from bastion.model import Clock, system_clock
from bastion.store.apikeys import ApiKeyStore
from bastion.store.engine import async_engine
from bastion.store.migrate import current_revision, head_revision
from bastion.store.users import UserStore

T = TypeVar("T")


@dataclass(frozen=True)
class StoreContext:
    """Everything a command or the server needs to touch durable state."""

    config: Config
    keyring: Keyring
    engine: AsyncEngine
    users: UserStore
    api_keys: ApiKeyStore


def load_settings(config_path: str | os.PathLike[str]) -> tuple[Config, Keyring]:
    """``bastion.yaml`` and the keyring it names. Raises ConfigError with a clear message."""
    config = load_config(config_path)
    keyring = load_keyring(config.resolve(config.secrets.master_key_file))
    return config, keyring


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a message helper must never raise
        return "<unparseable URL>"


def _sqlite_file(url: str) -> Path | None:
    rest = url.removeprefix("sqlite+aiosqlite://").removeprefix("sqlite://")
    if rest in ("", "/", "/:memory:"):
        return None
    return Path(rest.removeprefix("/").split("?", 1)[0])


async def ensure_schema(engine: AsyncEngine, url: str) -> None:
    """Raise ConfigError unless the database is reachable and at the newest revision.

    A SQLite file that is not there is refused before connecting, which would create
    it empty (`bastion serve` and `config check` left one behind).
    """
    sqlite_file = _sqlite_file(url) if url.startswith("sqlite") else None
    if sqlite_file is not None and not sqlite_file.exists():
        raise ConfigError(f"database {sqlite_file}: no such file (run 'bastion init' first)")
    try:
        revision = await current_revision(engine)
    except Exception as exc:  # noqa: BLE001 - any driver error becomes one clear line
        raise ConfigError(
            f"database {safe_url(url)}: cannot connect ({exc.__class__.__name__})"
        ) from None
    if revision != head_revision():
        raise ConfigError(
            f"database {safe_url(url)}: schema is at {revision or 'nothing'}, "
            f"expected {head_revision()} (run 'bastion init' to create or upgrade it)"
        )


@asynccontextmanager
async def open_store(
    config: Config | str | os.PathLike[str],
    *,
    keyring: Keyring | None = None,
    clock: Clock = system_clock,
    require_schema: bool = True,
) -> AsyncIterator[StoreContext]:
    """Load the config (if given a path) and keyring, open the engine; dispose it on exit.

    Args:
        config: a loaded :class:`Config` or the path of ``bastion.yaml``.
        keyring: defaults to the master key file the config names.
        clock: passed to the stores.
        require_schema: refuse a database that is missing or not migrated to head.

    Raises:
        ConfigError: bad config, missing key file, or missing/unmigrated database.
    """
    if not isinstance(config, Config):
        config = load_config(config)
    if keyring is None:
        keyring = load_keyring(config.resolve(config.secrets.master_key_file))
    url = config.database_url
    engine = async_engine(url)
    try:
        if require_schema:
            await ensure_schema(engine, url)
        yield StoreContext(
            config=config,
            keyring=keyring,
            engine=engine,
            users=UserStore(engine, clock=clock),
            api_keys=ApiKeyStore(engine, clock=clock),
        )
    finally:
        await engine.dispose()


def run_with_store(
    config_path: str | os.PathLike[str],
    body: Callable[[StoreContext], Awaitable[T]],
    *,
    clock: Clock = system_clock,
) -> T:
    """Run ``body`` in a fresh event loop with the store open (for CLI commands).

    Raises only :class:`BastionError` subclasses for expected failures: a bad config, a
    missing key or database (ConfigError), a database that fails mid-way (Unavailable), a
    missing or conflicting record.
    """

    async def main() -> T:
        async with open_store(config_path, clock=clock) as ctx:
            return await body(ctx)

    try:
        return asyncio.run(main())
    except (SQLAlchemyError, OSError) as exc:
        raise Unavailable(f"database error: {exc.__class__.__name__}: {exc}") from None
