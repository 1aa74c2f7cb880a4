"""The ``bastion`` command line (Typer + Rich).

Importing it loads Typer, Rich and each command's options only: a command imports what
it needs (the store, the gateway, the scanner) when it runs (see cli/_common.py).
"""

from __future__ import annotations

from typing import Annotated

import typer

from bastion.cli import clients, config_cmd, demo, jwks, keys, scan, serve, users

app = typer.Typer(
    name="bastion",
    help="API authentication done right: gateway, authorization server and scanner.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        from bastion import __version__

        print(f"bastion {__version__}")
        raise typer.Exit


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """API authentication done right: gateway, authorization server and scanner."""


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
