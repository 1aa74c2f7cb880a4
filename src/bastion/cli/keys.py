"""``bastion keys``: API key administration.

A new key is printed once, alone on standard output (so ``KEY=$(bastion keys create ...)``
works); everything else goes to standard error. Only an HMAC of the key is stored.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

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
    from bastion.credentials.apikey import ApiKeys, IssuedKey, Lifetime
    from bastion.store import ApiKeyRecord, StoreContext

app = typer.Typer(no_args_is_help=True)

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``30d``, ``2w``. Raises ValueError."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 24h or 30d")
    try:
        return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    except OverflowError:
        raise ValueError(f"{text!r} is too far in the future") from None


def parse_expiry(text: str, now: datetime) -> datetime | None:
    """``never``, a duration from now, a date (the key works through that UTC day) or an
    ISO 8601 time with a zone. Raises ValueError, also for a time not in the future."""
    text = text.strip()
    if text.lower() == "never":
        return None
    if _DURATION.match(text):
        try:
            moment = now + parse_duration(text)
        except OverflowError:
            raise ValueError(f"{text!r} is too far in the future") from None
    elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        except OverflowError:
            raise ValueError(f"{text!r} is too far in the future") from None
        except ValueError:
            raise ValueError(f"{text!r} is not a date") from None
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not 'never', a duration, a date or a time") from None
        if moment.tzinfo is None:
            raise ValueError(f"{text!r} has no time zone; add Z or +00:00")
        moment = moment.astimezone(UTC)
    if moment <= now:
        raise ValueError(f"{text!r} is not in the future")
    return moment


def _label(kind: str, value: str) -> str:
    value = value.strip()
    if not value or len(value) > 255:
        fail(f"{kind} must be 1 to 255 characters", 1)
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        fail(f"{kind} must not contain control characters", 1)
    return value


def _show_once(issued: IssuedKey) -> None:
    rec = issued.record
    print(issued.key)  # plain print: no markup, no wrapping
    err.print(
        Text(
            f"API key {rec.key_id} for {rec.subject} (name {rec.name!r}, "
            f"scopes: {', '.join(rec.scopes) or '-'}, roles: {', '.join(rec.roles) or '-'}, "
            f"expires: {when(rec.expires_at)}).\n"
            "Store it now: it is shown only this once and cannot be recovered.",
            style="bold yellow",
        )
    )


def _api_keys(ctx: StoreContext) -> ApiKeys:
    from bastion.credentials.apikey import ApiKeys

    return ApiKeys.from_keyring(ctx.api_keys, ctx.keyring, ctx.config.api_keys)


Expires = Annotated[
    str,
    typer.Option(
        "--expires",
        help="'never', a duration (30d, 12h, 2w), a date (valid through that UTC day) "
        "or an ISO time with a zone.",
    ),
]


def _now() -> datetime:
    return datetime.now(UTC)


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="What the key is for.")],
    subject: Annotated[str, typer.Option("--subject", help="The principal the key acts as.")],
    scopes: Annotated[str | None, typer.Option("--scopes", help="Comma-separated.")] = None,
    roles: Annotated[str | None, typer.Option("--roles", help="Comma-separated.")] = None,
    expires: Expires = "90d",
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Create an API key and print it once."""
    name, subject = _label("name", name), _label("subject", subject)
    try:
        expires_at = parse_expiry(expires, _now())
    except ValueError as exc:
        fail(str(exc), 1)

    async def body(ctx: StoreContext) -> IssuedKey:
        return await _api_keys(ctx).issue(
            name=name,
            subject=subject,
            scopes=split_list(scopes),
            roles=split_list(roles),
            expires_at=expires_at,
        )

    _show_once(run_command(config, body))


def key_json(rec: ApiKeyRecord, now: datetime) -> dict[str, Any]:
    """One key in ``keys list --json`` (docs/deployment.md#scripting): never the key or
    its hash."""
    return {
        "key_id": rec.key_id,
        "name": rec.name,
        "subject": rec.subject,
        "scopes": list(rec.scopes),
        "roles": list(rec.roles),
        "status": rec.status(now),
        "replaced_by": rec.replaced_by,
        "created_at": iso(rec.created_at),
        "expires_at": iso(rec.expires_at),
        "last_used_at": iso(rec.last_used_at),
        "revoked_at": iso(rec.revoked_at),
    }


@app.command("list")
def list_keys(
    subject: Annotated[str | None, typer.Option("--subject", help="Only this subject's.")] = None,
    as_json: JsonOutput = False,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """List API keys (never the key or its hash)."""
    from rich.table import Table

    records: tuple[ApiKeyRecord, ...] = run_command(
        config, lambda ctx: ctx.api_keys.list(subject=subject)
    )
    now = _now()
    if as_json:
        print_json([key_json(rec, now) for rec in records])
        return
    table = Table("key_id", "name", "subject", "scopes", "expires", "last used", "status")
    for rec in records:
        status = rec.status(now)
        if status == "rotating":
            status = f"rotating → {rec.replaced_by}"
        table.add_row(
            rec.key_id,
            Text(rec.name),
            Text(rec.subject),
            Text(", ".join(rec.scopes)),
            when(rec.expires_at),
            when(rec.last_used_at, never="-"),
            status,
        )
    out.print(table)


@app.command("revoke")
def revoke(key_id: str, config: ConfigPath = DEFAULT_CONFIG) -> None:
    """Revoke a key now (other gateway instances stop accepting it within their cache TTL)."""
    rec = run_command(config, lambda ctx: _api_keys(ctx).revoke(key_id))
    err.print(Text(f"revoked {rec.key_id} (revoked at {when(rec.revoked_at)})"))


@app.command("rotate")
def rotate(
    key_id: str,
    overlap: Annotated[
        str, typer.Option("--overlap", help="How long the old key keeps working (e.g. 24h).")
    ] = "24h",
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="The new key's expiry; default: the old key's lifetime."),
    ] = None,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Replace a key by a new one with the same scopes and roles; print the new key once."""
    from bastion.credentials.apikey import Lifetime

    try:
        overlap_for = parse_duration(overlap) if overlap.strip() != "0" else timedelta(0)
        expires_at: datetime | Lifetime | None = (
            Lifetime.SAME if expires is None else parse_expiry(expires, _now())
        )
    except ValueError as exc:
        fail(str(exc), 1)

    async def body(ctx: StoreContext) -> tuple[ApiKeyRecord, IssuedKey]:
        return await _api_keys(ctx).rotate(key_id, overlap=overlap_for, expires_at=expires_at)

    old, new = run_command(config, body)
    _show_once(new)
    err.print(Text(f"old key {old.key_id} keeps working until {when(old.expires_at)}"))
