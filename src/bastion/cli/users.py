"""``bastion users``: user administration (HTTP Basic and login)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from bastion.cli._common import (
    DEFAULT_CONFIG,
    ConfigPath,
    err,
    fail,
    out,
    run_command,
    split_list,
    when,
)
from bastion.credentials._passwords import hash_password
from bastion.credentials.basic import check_password, check_username
from bastion.store import StoreContext, UserRecord

app = typer.Typer(no_args_is_help=True)


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
