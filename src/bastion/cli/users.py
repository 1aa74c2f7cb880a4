"""``bastion users``: user administration (HTTP Basic and login)."""

from __future__ import annotations

import sys
import unicodedata
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.text import Text

from bastion.cli._common import (
    DEFAULT_CONFIG,
    ConfigPath,
    JsonOutput,
    err,
    fail,
    iso,
    out,
    print_json,
    run_command,
    split_list,
    when,
)

if TYPE_CHECKING:
    from bastion.identity import Factors, IdentityStore
    from bastion.store import StoreContext, UserRecord

app = typer.Typer(no_args_is_help=True)


def _identity(ctx: StoreContext) -> IdentityStore:
    from bastion.identity import IdentityStore

    return IdentityStore(ctx.engine, ctx.keyring)


def _hash(password: str) -> str:
    from bastion.credentials._passwords import hash_password

    return hash_password(password)


def _not_found(username: str) -> Exception:
    from bastion.store._db import RecordNotFound

    return RecordNotFound(f"no user {username!r}", detail=f"no user {username!r}")


def _username(name: str) -> str:
    from bastion.credentials.basic import check_username

    try:
        return check_username(name)
    except ValueError as exc:
        fail(str(exc), 1)


def _read_password(from_stdin: bool, username: str) -> str:
    """The new password, checked against the NIST SP 800-63B policy (docs/mfa.md)."""
    from bastion.credentials.basic import check_password
    from bastion.identity import password_problems

    if from_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    problems = password_problems(password, username=username)
    if problems:
        fail("; ".join(problems), 1)
    return check_password(password)


PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]
Roles = Annotated[str | None, typer.Option("--roles", help="Comma-separated roles.")]
Email = Annotated[
    str | None, typer.Option("--email", help="OpenID Connect 'email' claim ('' to clear).")
]
Name = Annotated[
    str | None, typer.Option("--name", help="OpenID Connect 'name' claim ('' to clear).")
]
EmailVerified = Annotated[
    bool | None,
    typer.Option(
        "--email-verified/--email-unverified",
        help="OpenID Connect 'email_verified' (default: unverified).",
    ),
]


def _profile(email: str | None, name: str | None, verified: bool | None) -> dict[str, Any]:
    """The ``email``/``name``/``email_verified`` columns to set (OIDC Core §5.1 claims)."""
    values: dict[str, Any] = {}
    if email is not None:
        email = unicodedata.normalize("NFC", email.strip())
        local, at, domain = email.rpartition("@")
        if email and (
            not at
            or not local
            or "." not in domain
            or len(email) > 320
            or any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in email)
        ):
            fail(f"not an email address: {email!r}", 1)
        values["email"] = email or None
        values["email_verified"] = bool(email) and bool(verified)
    elif verified is not None:
        values["email_verified"] = verified
    if name is not None:
        name = unicodedata.normalize("NFC", name.strip())
        if len(name) > 255 or any(unicodedata.category(ch) == "Cc" for ch in name):
            fail("the name must be at most 255 characters without control characters", 1)
        values["name"] = name or None
    return values


async def _set_profile(ctx: StoreContext, username: str, values: dict[str, Any]) -> None:
    from sqlalchemy import Table as SqlTable
    from sqlalchemy import update

    from bastion.model import system_clock
    from bastion.store._db import db_errors, now_utc
    from bastion.store.models import User

    users = cast(SqlTable, User.__table__)
    statement = (
        update(users)
        .where(users.c.username == username)
        .values(**values, updated_at=now_utc(system_clock))
    )
    with db_errors(f"user {username!r}"):
        async with ctx.engine.begin() as conn:
            result = await conn.execute(statement)
    if result.rowcount == 0:
        raise _not_found(username)


@app.command("add")
def add(
    username: str,
    roles: Roles = None,
    email: Email = None,
    display_name: Name = None,
    email_verified: EmailVerified = None,
    password_stdin: PasswordStdin = False,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Add a user; the password is prompted for (hidden, twice) or read from stdin."""
    name = _username(username)
    profile = _profile(email, display_name, email_verified)
    password_hash = _hash(_read_password(password_stdin, name))

    async def body(ctx: StoreContext) -> UserRecord:
        user = await ctx.users.add(name, password_hash, roles=split_list(roles))
        if profile:
            await _set_profile(ctx, name, profile)
        return user

    user = run_command(config, body)
    err.print(Text(f"added user {user.username} (roles: {', '.join(user.roles) or '-'})"))


@app.command("passwd")
def passwd(
    username: str, password_stdin: PasswordStdin = False, config: ConfigPath = DEFAULT_CONFIG
) -> None:
    """Set a user's password."""
    name = _username(username)
    password_hash = _hash(_read_password(password_stdin, name))
    run_command(config, lambda ctx: ctx.users.set_password(name, password_hash))
    err.print(Text(f"password changed for {name}"))


@app.command("profile")
def profile(
    username: str,
    email: Email = None,
    display_name: Name = None,
    email_verified: EmailVerified = None,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Set a user's OpenID Connect claims: email, email_verified, name."""
    name = _username(username)
    values = _profile(email, display_name, email_verified)
    if not values:
        fail("nothing to change: give --email, --name or --email-verified", 1)
    run_command(config, lambda ctx: _set_profile(ctx, name, values))
    err.print(Text(f"profile of {name}: " + ", ".join(f"{k}={v}" for k, v in values.items())))


@app.command("disable")
def disable(username: str, config: ConfigPath = DEFAULT_CONFIG) -> None:
    """Disable a user: their password stops working at once and their sessions end."""
    name = _username(username)

    async def body(ctx: StoreContext) -> int:
        await ctx.users.disable(name)
        return await _identity(ctx).end_sessions(name)

    ended = run_command(config, body)
    err.print(Text(f"disabled {name}; {ended} session(s) ended"))


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


@app.command("reset-mfa")
def reset_mfa(username: str, config: ConfigPath = DEFAULT_CONFIG) -> None:
    """Remove a user's second factors (authenticator app, recovery codes, passkeys) and
    sign them out everywhere: for a user who lost every factor, after checking who they are."""
    name = _username(username)

    async def body(ctx: StoreContext) -> int:
        if await ctx.users.get_by_username(name) is None:
            raise _not_found(name)
        return await _identity(ctx).reset(name)

    ended = run_command(config, body)
    err.print(Text(f"second factors of {name} removed; {ended} session(s) ended"))


def _mfa(factors: Factors) -> str:
    kinds = ["totp"] if factors.totp else []
    if factors.passkeys:
        kinds.append(f"{factors.passkeys} passkey{'s' if factors.passkeys > 1 else ''}")
    return ", ".join(kinds) or "-"


def user_json(user: UserRecord, factors: Factors) -> dict[str, Any]:
    """One user in ``users list --json`` (docs/deployment.md#scripting): never a
    password hash or a factor's secret."""
    return {
        "username": user.username,
        "roles": list(user.roles),
        "disabled": user.disabled,
        "mfa": {
            "totp": factors.totp,
            "passkeys": factors.passkeys,
            "recovery_codes": factors.recovery_codes,
        },
        "created_at": iso(user.created_at),
        "updated_at": iso(user.updated_at),
    }


@app.command("list")
def list_users(as_json: JsonOutput = False, config: ConfigPath = DEFAULT_CONFIG) -> None:
    """List users with their second factors (never a password hash or a secret)."""
    from rich.table import Table

    async def body(ctx: StoreContext) -> list[tuple[UserRecord, Factors]]:
        identity = _identity(ctx)
        return [(u, await identity.factors(u.username)) for u in await ctx.users.list()]

    rows = run_command(config, body)
    if as_json:
        print_json([user_json(user, factors) for user, factors in rows])
        return
    table = Table("username", "roles", "status", "mfa", "created", "updated")
    for user, factors in rows:
        table.add_row(
            Text(user.username),
            Text(", ".join(user.roles)),
            Text("disabled" if user.disabled else "active"),
            Text(_mfa(factors)),
            when(user.created_at),
            when(user.updated_at),
        )
    out.print(table)
