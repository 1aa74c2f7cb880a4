"""``bastion serve``: run the gateway (granian by default; uvicorn optional)."""

from __future__ import annotations

import enum
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bastion._env import CONFIG_ENV, CONFIG_TEXT_ENV
from bastion.cli._common import DEFAULT_CONFIG, ConfigPath, err, fail, out
from bastion.errors import BastionError

if TYPE_CHECKING:
    from bastion.config import Config


class Server(enum.StrEnum):
    GRANIAN = "granian"
    UVICORN = "uvicorn"


def checked_config(config_path: Path) -> tuple[Config, str]:
    """The validated config and its text, after the whole gateway was built once from
    it in a child process (see bastion.cli._preflight): a bad key file or database
    fails here, in one line, as it would in every worker."""
    from bastion._server import preflight
    from bastion.config import load_config, read_config_text

    path = str(config_path.resolve())
    try:
        text = read_config_text(config_path)
        config = load_config(config_path, text)
    except BastionError as exc:
        fail(str(exc))
    problem = preflight(path, text)
    if problem is not None:
        fail(problem)
    return config, text


def load_checked(config_path: Path) -> Config:
    """:func:`checked_config`, its text handed on to the server's workers (bastion._env)."""
    config, text = checked_config(config_path)
    os.environ[CONFIG_ENV] = str(config_path.resolve())
    os.environ[CONFIG_TEXT_ENV] = text
    return config


def server_spec(config: Config) -> dict[str, Any]:
    from bastion.gateway._rsgi import wants_rsgi

    listen, tls = config.listen, config.listen.tls
    return {
        # granian: RSGI when no route is proxied (cheaper per request; see _rsgi.py).
        "interface": "rsgi" if wants_rsgi(config) else "asgi",
        "host": listen.host,
        "port": listen.port,
        "workers": listen.workers,
        "cert": str(config.resolve(tls.cert_file)) if tls else None,
        "key": str(config.resolve(tls.key_file)) if tls else None,
        "min_tls": tls.min_version if tls else "1.2",
        "max_header_bytes": config.limits.max_header_bytes,
        "head_timeout": config.limits.head_timeout_seconds,
        "http2": listen.http2,
        # The server speaks WebSocket only where a proxied route accepts it.
        "websockets": any(r.websocket and r.upstream is not None for r in config.routes),
        "ws_max_bytes": config.websockets.max_message_bytes,
    }


def run_server(
    config_path: Path,
    config: Config,
    server: Server,
    *,
    replace_process: bool = False,
    reuse_port: bool = False,
) -> None:
    """Serve the gateway. With ``replace_process`` this process becomes the server
    (``exec``), dropping the CLI's imports from the parent of the server's workers;
    with ``reuse_port`` it may share a port another granian listens on."""
    from bastion._server import port_problem

    listen = config.listen
    scheme = "https" if listen.tls else "http"
    spec = server_spec(config)
    if reuse_port and server is Server.UVICORN:
        fail("--reuse-port needs granian (the default): uvicorn binds without SO_REUSEPORT")
    if server is Server.UVICORN and importlib.util.find_spec("uvicorn") is None:
        fail("uvicorn is not installed (pip install uvicorn)")
    if server is Server.UVICORN and spec["min_tls"] == "1.3":
        # uvicorn builds its TLS context itself and takes no minimum version: it would
        # accept TLS 1.2 here. Refused rather than served below the configured floor.
        fail(
            "listen.tls.min_version 1.3 cannot be held by uvicorn (it would accept TLS 1.2): "
            "serve with granian (the default) or terminate TLS in front of bastion"
        )
    if server is Server.UVICORN and spec["websockets"] and not importlib.util.find_spec("wsproto"):
        fail("routes accept WebSockets: uvicorn needs wsproto for them (pip install wsproto)")
    if server is Server.UVICORN and spec["http2"]:
        fail("listen.http2 needs granian (the default): uvicorn serves HTTP/1.1 only here")
    problem = None if reuse_port else port_problem(listen.host, listen.port)
    if problem is not None:
        fail(problem)
    # granian serves RSGI when no route is proxied (docs/deployment.md), else ASGI.
    kind = f"granian {spec['interface'].upper()}" if server is Server.GRANIAN else server.value
    out.print(
        f"bastion gateway on {scheme}://{listen.host}:{listen.port} "
        f"({kind}, {listen.workers} worker(s)); Ctrl-C stops it"
    )
    if listen.workers > 1 and not config.redis_url:
        err.print(
            f"warning: {listen.workers} workers count rate limits and failed credentials "
            "each on its own (in-process counters): every limit is effectively "
            f"{listen.workers}x higher. Set redis_url to share them (docs/deployment.md)."
        )
    if replace_process:
        sys.stdout.flush()
        args = [sys.executable, "-m", "bastion._server", server.value, json.dumps(spec)]
        os.execv(sys.executable, args)  # noqa: S606 - our own module, fixed arguments
    from bastion import _server

    (_server.run_uvicorn if server is Server.UVICORN else _server.run_granian)(spec)


def serve(
    config: ConfigPath = DEFAULT_CONFIG,
    server: Annotated[Server, typer.Option(help="ASGI server to run.")] = Server.GRANIAN,
    reuse_port: Annotated[
        bool,
        typer.Option(
            "--reuse-port",
            help="Share listen.port with other granian processes on purpose (the kernel "
            "spreads connections over them); without it a port in use is refused.",
        ),
    ] = False,
) -> None:
    """Run the gateway: reverse proxy, forward-auth endpoint, /metrics, /healthz, /readyz."""
    loaded = load_checked(config)
    run_server(config, loaded, server, replace_process=True, reuse_port=reuse_port)
