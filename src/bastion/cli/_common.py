"""What every command shares: the ``--config`` option, one-line errors, store access.

Expected failures become one line on stderr and an exit code (2: config, key file or
database problem; 1: no such record, a conflict or bad input), never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from bastion.errors import BastionError, ConfigError, Unavailable

if TYPE_CHECKING:
    from bastion.store import StoreContext

# Every command module imports only this much at start: what a command needs (the
# store, SQLAlchemy, the gateway, the scanner) it imports when it runs, so that
# `bastion --help` and each command start fast (bench/cli_startup.py;
# tests/cli/test_startup.py holds it).

T = TypeVar("T")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigPath = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="BASTION_CONFIG",
        help="Path of bastion.yaml.",
        show_default=True,
    ),
]
DEFAULT_CONFIG = Path("bastion.yaml")
JsonOutput = Annotated[
    bool,
    typer.Option(
        "--json", help="Print a JSON array instead of a table (docs/deployment.md#scripting)."
    ),
]


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(Text(f"error: {message}"))
    raise typer.Exit(code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; a BastionError becomes a one-line message and exit code 2."""
    import asyncio

    try:
        return asyncio.run(coro)
    except BastionError as exc:
        fail(str(exc))


def run_command(config: Path, body: Callable[[StoreContext], Awaitable[T]]) -> T:
    """Open config + keyring + database, run ``body``, close; failures exit cleanly."""
    from bastion.store import run_with_store

    try:
        return run_with_store(config, body)
    except (ConfigError, Unavailable) as exc:
        fail(exc.detail or exc.reason, 2)
    except BastionError as exc:
        fail(exc.detail or exc.reason, 1)


def read_text(path: Path, option: str) -> str:
    """A file named on the command line, or ValueError saying in words why it cannot be
    read (not Python's "[Errno 2] No such file or directory: 'x'")."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{option} {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{option} {path}: not UTF-8 text") from None


def split_list(value: str | None) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]``."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def when(moment: datetime | None, never: str = "never") -> str:
    return never if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def iso(moment: datetime | None) -> str | None:
    """An RFC 3339 UTC time (``2025-01-31T12:00:00Z``) for --json; None stays null."""
    if moment is None:
        return None
    if moment.tzinfo is None:  # the store's times are UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def print_json(rows: list[dict[str, Any]]) -> None:
    """A list command's --json: one array on standard output, nothing else there."""
    sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
