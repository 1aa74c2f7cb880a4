"""``bastion serve``: run the gateway (granian by default; uvicorn optional)."""

from __future__ import annotations

import enum
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from bastion.cli._common import DEFAULT_CONFIG, ConfigPath, fail, out
from bastion.config import Config, load_config
from bastion.errors import BastionError

APP_FACTORY = "bastion.gateway.app:from_env"


class Server(enum.StrEnum):
    GRANIAN = "granian"
    UVICORN = "uvicorn"


def load_checked(config_path: Path) -> Config:
    """The validated config, after the whole gateway was built once in a child process
    (see bastion.cli._preflight) so a bad key file or database fails here, in one line."""
    try:
        config = load_config(config_path)
    except BastionError as exc:
        fail(str(exc))
    check = subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "bastion.cli._preflight", str(config_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        lines = check.stderr.strip().splitlines()
        fail("\n".join(lines[-5:]) if lines else f"start-up check failed ({check.returncode})")
    return config


def run_server(config_path: Path, config: Config, server: Server, *, quiet: bool = False) -> None:
    os.environ["BASTION_CONFIG"] = str(config_path.resolve())
    listen = config.listen
    if not quiet:
        scheme = "https" if listen.tls else "http"
        out.print(
            f"bastion gateway on {scheme}://{listen.host}:{listen.port} "
            f"({server.value}, {listen.workers} worker(s)); Ctrl-C stops it"
        )
    if server is Server.UVICORN:
        _run_uvicorn(config)
    else:
        _run_granian(config)


def _run_granian(config: Config) -> None:
    from granian.constants import Interfaces, Loops, SSLProtocols
    from granian.log import LogLevels
    from granian.server import Server as Granian

    listen = config.listen
    tls = listen.tls
    server = Granian(
        APP_FACTORY,
        address=listen.host,
        port=listen.port,
        interface=Interfaces.ASGI,
        workers=listen.workers,
        loop=Loops.uvloop,
        factory=True,
        log_level=LogLevels.warning,
        ssl_cert=config.resolve(tls.cert_file) if tls else None,
        ssl_key=config.resolve(tls.key_file) if tls else None,
        ssl_protocol_min=(
            SSLProtocols.tls13 if tls and tls.min_version == "1.3" else SSLProtocols.tls12
        ),
        websockets=False,
    )
    server.serve()


def _run_uvicorn(config: Config) -> None:
    try:
        import uvicorn
    except ImportError:
        fail("uvicorn is not installed (pip install uvicorn)")
    import ssl

    listen = config.listen
    tls = listen.tls
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=listen.host,
        port=listen.port,
        workers=listen.workers,
        loop="uvloop",
        log_level="warning",
        access_log=False,
        ssl_certfile=str(config.resolve(tls.cert_file)) if tls else None,
        ssl_keyfile=str(config.resolve(tls.key_file)) if tls else None,
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
        ssl_ciphers="ECDHE+AESGCM:ECDHE+CHACHA20",
        ws="none",
    )


def serve(
    config: ConfigPath = DEFAULT_CONFIG,
    server: Annotated[Server, typer.Option(help="ASGI server to run.")] = Server.GRANIAN,
) -> None:
    """Run the gateway: reverse proxy, forward-auth endpoint, /metrics, /healthz, /readyz."""
    loaded = load_checked(config)
    run_server(config, loaded, server)
