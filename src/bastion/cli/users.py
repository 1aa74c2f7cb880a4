"""``bastion users``: user administration (HTTP Basic and login).

Also home of the plumbing every store-backed command shares: the ``--config`` option and
:func:`run_command`, which turns expected failures into one line on stderr and an exit
code (2: config or database problem; 1: no such record or a conflict), never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bastion.credentials._passwords import hash_password
from bastion.credentials.basic import check_password, check_username
from bastion.errors import BastionError, ConfigError, Unavailable
from bastion.store import StoreContext, UserRecord, run_with_store

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True)
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


def _username(name: str) -> str:
    try:
        return check_username(name)
    except ValueError as exc:
        fail(str(exc), 1)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        return check_password(password)
    except ValueError as exc:
        fail(str(exc), 1)


PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]
Roles = Annotated[str | None, typer.Option("--roles", help="Comma-separated roles.")]


@app.command("add")
def add(
    username: str,
    roles: Roles = None,
    password_stdin: PasswordStdin = False,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Add a user; the password is prompted for (hidden, twice) or read from stdin."""
    name = _username(username)
    password_hash = hash_password(_read_password(password_stdin))

    async def body(ctx: StoreContext) -> UserRecord:
        return await ctx.users.add(name, password_hash, roles=split_list(roles))

    user = run_command(config, body)
    err.print(Text(f"added user {user.username} (roles: {', '.join(user.roles) or '-'})"))


@app.command("passwd")
def passwd(
    username: str, password_stdin: PasswordStdin = False, config: ConfigPath = DEFAULT_CONFIG
) -> None:
    """Set a user's password."""
    name = _username(username)
    password_hash = hash_password(_read_password(password_stdin))
    run_command(config, lambda ctx: ctx.users.set_password(name, password_hash))
    err.print(Text(f"password changed for {name}"))


@app.command("disable")
def disable(username: str, config: ConfigPath = DEFAULT_CONFIG) -> None:
    """Disable a user: their password stops working at once."""
    name = _username(username)
    run_command(config, lambda ctx: ctx.users.disable(name))
    err.print(Text(f"disabled {name}"))


@app.command("enable")
def enable(username: str, config: ConfigPath = DEFAULT_CONFIG) -> None:
    """Enable a disabled user."""
    name = _username(username)
    run_command(config, lambda ctx: ctx.users.enable(name))
    err.print(Text(f"enabled {name}"))


@app.command("roles")
def set_roles(
    username: str,
    roles: Annotated[str, typer.Argument(help="Comma-separated roles ('' for none).")],
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Replace a user's roles."""
    name = _username(username)
    user = run_command(config, lambda ctx: ctx.users.set_roles(name, split_list(roles)))
    err.print(Text(f"roles of {name}: {', '.join(user.roles) or '-'}"))


@app.command("list")
def list_users(config: ConfigPath = DEFAULT_CONFIG) -> None:
    """List users (never their password hashes)."""
    users = run_command(config, lambda ctx: ctx.users.list())
    table = Table("username", "roles", "status", "created", "updated")
    for user in users:
        table.add_row(
            Text(user.username),
            Text(", ".join(user.roles)),
            Text("disabled" if user.disabled else "active"),
            when(user.created_at),
            when(user.updated_at),
        )
    out.print(table)
