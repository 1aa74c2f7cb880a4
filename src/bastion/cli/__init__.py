"""The ``bastion`` command line (Typer + Rich)."""

from __future__ import annotations

import typer

from bastion.cli import clients, config_cmd, demo, jwks, keys, scan, serve, users

app = typer.Typer(
    name="bastion",
    help="API authentication done right: gateway, authorization server and scanner.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command(name="init")(config_cmd.init)
app.command(name="serve")(serve.serve)
app.command(name="demo")(demo.demo)
app.add_typer(config_cmd.config_app, name="config", help="Validate a bastion.yaml.")
app.add_typer(keys.app, name="keys", help="Create, list, rotate and revoke API keys.")
app.add_typer(users.app, name="users", help="Manage users (HTTP Basic and login).")
app.add_typer(clients.app, name="clients", help="Register and manage OAuth clients.")
app.add_typer(jwks.app, name="jwks", help="List and rotate the authorization server's keys.")
app.command(name="scan")(scan.scan)


def main() -> None:
    app()
