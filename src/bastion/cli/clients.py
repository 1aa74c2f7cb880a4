"""``bastion clients``: OAuth client administration (the admin API does the same).

A new secret is printed once, alone on standard output (``SECRET=$(bastion clients
create ...)``); everything else goes to standard error. Only an HMAC of it is stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from bastion.cli._common import (
    DEFAULT_CONFIG,
    ConfigPath,
    JsonOutput,
    err,
    fail,
    out,
    print_json,
    read_text,
    run_command,
    split_list,
)

if TYPE_CHECKING:
    from bastion.oauth.clients import ClientStore, CreatedClient
    from bastion.store import StoreContext

app = typer.Typer(no_args_is_help=True)


def _store(ctx: StoreContext) -> ClientStore:
    from bastion.oauth.clients import ClientStore

    return ClientStore(ctx.engine, ctx.keyring.client_secret_hmac)


def _show(created: CreatedClient) -> None:
    rec = created.record
    if created.secret is not None:
        print(created.secret)  # plain print: no markup, no wrapping
    err.print(Text(f"client {rec.client_id} ({rec.name}, {rec.auth_method.value})"))
    if created.secret is not None:
        err.print(Text("Store the secret now: it is shown only this once.", style="bold yellow"))


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="What the client is.")],
    grants: Annotated[
        str,
        typer.Option(
            "--grants",
            help="Comma-separated: authorization_code, refresh_token, "
            "client_credentials, device_code.",
        ),
    ] = "client_credentials",
    auth: Annotated[
        str,
        typer.Option(
            "--auth",
            help="client_secret_basic, client_secret_post, private_key_jwt or none (public).",
        ),
    ] = "client_secret_basic",
    redirect_uris: Annotated[str | None, typer.Option("--redirect-uris")] = None,
    post_logout_redirect_uris: Annotated[str | None, typer.Option("--post-logout-uris")] = None,
    scopes: Annotated[str | None, typer.Option("--scopes", help="Comma-separated.")] = None,
    client_id: Annotated[str | None, typer.Option("--client-id", help="Default: random.")] = None,
    jwks_file: Annotated[
        Path | None, typer.Option("--jwks-file", help="Public JWKS for private_key_jwt.")
    ] = None,
    opaque: Annotated[bool, typer.Option("--opaque", help="Opaque access tokens.")] = False,
    require_par: Annotated[bool, typer.Option("--require-par")] = False,
    skip_consent: Annotated[bool, typer.Option("--skip-consent", help="First-party.")] = False,
    may_introspect: Annotated[bool, typer.Option("--may-introspect")] = False,
    access_token_ttl: Annotated[int | None, typer.Option("--access-token-ttl")] = None,
    config: ConfigPath = DEFAULT_CONFIG,
) -> None:
    """Register a client; print its secret once (confidential secret clients only)."""
    from bastion.oauth.clients import InvalidClientMetadata, record_from_metadata

    grant_types = [
        "urn:ietf:params:oauth:grant-type:device_code" if g == "device_code" else g
        for g in split_list(grants)
    ]
    data: dict[str, Any] = {
        "client_name": name,
        "grant_types": grant_types,
        "token_endpoint_auth_method": auth,
        "redirect_uris": split_list(redirect_uris),
        "post_logout_redirect_uris": split_list(post_logout_redirect_uris),
        "scope": " ".join(split_list(scopes)),
        "access_token_format": "opaque" if opaque else "jwt",
        "require_pushed_authorization_requests": require_par,
        "skip_consent": skip_consent,
        "may_introspect": may_introspect,
    }
    if client_id:
        data["client_id"] = client_id
    if access_token_ttl is not None:
        data["access_token_ttl"] = access_token_ttl
    if jwks_file is not None:
        try:
            data["jwks"] = json.loads(read_text(jwks_file, "--jwks-file"))
        except json.JSONDecodeError as exc:
            fail(f"--jwks-file {jwks_file}: not JSON ({exc.msg}, line {exc.lineno})", 1)
        except ValueError as exc:
            fail(str(exc), 1)
    try:
        record = record_from_metadata(data)
    except InvalidClientMetadata as exc:
        fail(exc.detail or exc.reason, 1)
    _show(run_command(config, lambda ctx: _store(ctx).create(record)))


@app.command("list")
def list_clients(as_json: JsonOutput = False, config: ConfigPath = DEFAULT_CONFIG) -> None:
    """List clients (never a secret or its hash)."""
    from rich.table import Table

    records = run_command(config, lambda ctx: _store(ctx).list())
    if as_json:  # the admin API's client metadata (RFC 7591 names), never the secret
        print_json([rec.as_dict() for rec in records])
        return
    table = Table("client_id", "name", "auth", "grants", "scopes", "redirect URIs", "tokens")
    for rec in records:
        table.add_row(
            rec.client_id,
            Text(rec.name),
            rec.auth_method.value,
            Text(", ".join(g.rsplit(":", 1)[-1] for g in rec.grant_types)),
            Text(" ".join(rec.scopes)),
            Text("\n".join(rec.redirect_uris)),
            rec.token_format.value,
        )
    out.print(table)


@app.command("rotate-secret")
def rotate_secret(client_id: str, config: ConfigPath = DEFAULT_CONFIG) -> None:
    """Replace a client's secret and print the new one once (the old one stops working)."""
    _show(run_command(config, lambda ctx: _store(ctx).rotate_secret(client_id)))


@app.command("delete")
def delete(client_id: str, config: ConfigPath = DEFAULT_CONFIG) -> None:
    """Delete a client with its codes, refresh tokens and consents."""
    run_command(config, lambda ctx: _store(ctx).delete(client_id))
    err.print(Text(f"deleted client {client_id}"))
