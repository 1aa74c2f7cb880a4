"""What every command shares: the --config option and turning errors into one clear line."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from bastion.errors import BastionError

T = TypeVar("T")

console = Console(highlight=False)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)

ConfigOption = Annotated[
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


def fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code=code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; a BastionError becomes a one-line message and exit code 2."""
    try:
        return asyncio.run(coro)
    except BastionError as exc:
        raise fail(str(exc)) from None


def config_path(path: Path | None) -> Path:
    return path if path is not None else Path(os.environ.get("BASTION_CONFIG", DEFAULT_CONFIG))
