"""What every command shares: the ``--config`` option, one-line errors, store access.

Expected failures become one line on stderr and an exit code (2: config, key file or
database problem; 1: no such record, a conflict or bad input), never a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from bastion.errors import BastionError, ConfigError, Unavailable
from bastion.store import StoreContext, run_with_store

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


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(Text(f"error: {message}"))
    raise typer.Exit(code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; a BastionError becomes a one-line message and exit code 2."""
    try:
        return asyncio.run(coro)
    except BastionError as exc:
        fail(str(exc))


def run_command(config: Path, body: Callable[[StoreContext], Awaitable[T]]) -> T:
    """Open config + keyring + database, run ``body``, close; failures exit cleanly."""
    try:
        return run_with_store(config, body)
    except (ConfigError, Unavailable) as exc:
        fail(exc.detail or exc.reason, 2)
    except BastionError as exc:
        fail(exc.detail or exc.reason, 1)


def split_list(value: str | None) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]``."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def when(moment: datetime | None, never: str = "never") -> str:
    return never if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")
