"""``bastion jwks``: the authorization server's signing keys (list, rotate)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

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
    when,
)
from bastion.cli.keys import parse_duration

if TYPE_CHECKING:
    from bastion.store import StoreContext
    from bastion.store.models import SigningKey

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_keys(as_json: JsonOutput = False, config: ConfigPath = DEFAULT_CONFIG) -> None:
    """List signing keys: pending (published, not signing yet), active, retiring, expired."""
    from rich.table import Table

    from bastion.oauth.keys import key_states, list_oauth_keys
    from bastion.store.engine import session_factory

    async def body(ctx: StoreContext) -> list[SigningKey]:
        async with session_factory(ctx.engine)() as session:
            return await list_oauth_keys(session)

    rows = run_command(config, body)
    now = datetime.now(UTC)
    states = key_states(rows, now)
    if as_json:  # docs/deployment.md#scripting: never key material
        print_json(
            [
                {
                    "kid": row.kid,
                    "alg": row.alg,
                    "state": states[row.kid],
                    "active_from": iso(row.active_from),
                    "retire_after": iso(row.retire_after),
                }
                for row in rows
            ]
        )
        return
    table = Table("kid", "alg", "state", "signs from", "published until")
    for row in rows:
        table.add_row(
            row.kid,
            row.alg,
            states[row.kid],
            when(row.active_from),
            when(row.retire_after, never="-"),
        )
    out.print(table)


@app.command("rotate")
def rotate(
    publish_ahead: Annotated[
        str | None,
        typer.Option(
            "--publish-ahead",
            help="How long the new keys are published before "
            "they sign (default: oauth.key_publish_ahead_seconds).",
        ),
    ] = None,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Add a new key per algorithm; the old ones stay published until their tokens expire."""
    from bastion.oauth.keys import rotate_oauth_keys
    from bastion.store.engine import session_factory

    try:
        ahead = parse_duration(publish_ahead) if publish_ahead and publish_ahead != "0" else None
    except ValueError as exc:
        fail(str(exc), 1)

    async def body(ctx: StoreContext) -> list[SigningKey]:
        oauth = ctx.config.oauth
        keep = max(oauth.access_token_ttl_seconds, oauth.id_token_ttl_seconds) + 300
        lead = ahead if ahead is not None else timedelta(seconds=oauth.key_publish_ahead_seconds)
        if publish_ahead == "0":
            lead = timedelta(0)
        async with session_factory(ctx.engine)() as session, session.begin():
            return await rotate_oauth_keys(
                session, ctx.keyring, publish_ahead=lead, keep_old_for=timedelta(seconds=keep)
            )

    for row in run_command(config, body):
        err.print(f"new {row.alg} key {row.kid} signs from {when(row.active_from)}")
