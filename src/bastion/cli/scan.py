"""``bastion scan``: find authentication and authorization gaps in an HTTP API."""

from __future__ import annotations

import typer


def scan(base_url: str = typer.Argument(..., help="The API's base URL.")) -> None:
    """Scan an HTTP API for authentication and authorization gaps."""
    raise typer.Exit(code=2)
