"""What starting the command line loads: Typer, Rich and each command's options, not the
store, SQLAlchemy, the gateway or the scanner (they cost `bastion --help` and every
command 1.6-2 s; bench/cli_startup.py measures the time, this holds the cause)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from bastion.cli import app

runner = CliRunner()

# What a command loads when it runs, never at start. (Not pydantic: Typer loads it
# itself to show a command's options.)
HEAVY_PACKAGES = {"sqlalchemy", "alembic", "aiosqlite", "asyncpg", "httpx", "granian"}
HEAVY_MODULES = ("bastion.store", "bastion.scan", "bastion.gateway", "bastion.config")
HEAVY_MODULES += ("bastion.oauth", "bastion.credentials", "bastion.identity", "bastion.keyring")

LOADED = """
import sys
sys.argv = ["bastion", *sys.argv[1:]]
import bastion.cli
if len(sys.argv) > 1:
    try:
        bastion.cli.main()
    except SystemExit:
        pass
sys.stderr.write("\\n".join(sorted(sys.modules)))
"""


def _loaded(*args: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", LOADED, *args], capture_output=True, text=True, check=True
    )
    return proc.stderr.split()


@pytest.mark.parametrize(
    "args", [(), ("--help",), ("keys", "list", "--help"), ("scan", "--help"), ("--version",)]
)
def test_starting_the_cli_loads_no_store_scanner_or_gateway(args: tuple[str, ...]) -> None:
    modules = _loaded(*args)
    assert "bastion.cli.scan" in modules  # every command's options were read
    heavy = [m for m in modules if m.split(".")[0] in HEAVY_PACKAGES or m.startswith(HEAVY_MODULES)]
    assert heavy == []


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"bastion {importlib.metadata.version('bastion')}\n"


def test_the_format_names_the_cli_knows_are_the_scanner_s() -> None:
    from bastion.cli.scan import FORMAT_NAMES
    from bastion.scan import FORMATS

    assert sorted(FORMAT_NAMES) == sorted(FORMATS)
