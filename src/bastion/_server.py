"""Run the gateway's ASGI app under granian or uvicorn, from a small JSON spec.

``bastion serve`` replaces itself (``exec``) with ``python -m bastion._server``, so the
server's parent process holds only the ASGI server, not the CLI and every command's
imports: the ASGI server forks its workers from this process.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

from bastion._env import CONFIG_ENV, CONFIG_TEXT_ENV, MAX_CONFIG_TEXT

APP_FACTORY = "bastion.gateway.app:from_env"


# What the server may buffer of a request's head beyond bastion's own header limit (the
# request line, and HTTP/2's 32 bytes of accounting per field): past that the server
# itself refuses, before bastion's input guard would (431 either way).
HEAD_SLACK = 8 * 1024


def head_limit(spec: dict[str, Any]) -> int:
    """What the server may buffer of a request's head (``spec``: ``server_spec``'s)."""
    return int(spec["max_header_bytes"]) + HEAD_SLACK


def preflight(path: str, text: str) -> str | None:
    """Build the whole gateway once from config ``text`` (of the file ``path``) in a child
    process, as a worker would: None when it starts, else what went wrong, in a few lines."""
    if len(text.encode()) > MAX_CONFIG_TEXT:
        return f"{path}: larger than {MAX_CONFIG_TEXT // 1024} KiB, more than bastion hands on"
    env = {**os.environ, CONFIG_ENV: path, CONFIG_TEXT_ENV: text}
    try:
        check = subprocess.run(
            [sys.executable, "-m", "bastion.cli._preflight"],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        return "the start-up check did not finish within 120 s"
    if check.returncode == 0:
        return None
    lines = check.stderr.strip().splitlines()
    return "\n".join(lines[-5:]) if lines else f"start-up check failed ({check.returncode})"


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` is not free for this server alone, or None.

    granian's workers listen with SO_REUSEPORT: a second server on a port another one
    already listened on started as well, and the kernel shared the connections between
    the two (the same credentials then got 200 or 401 at random). A probe bound without
    SO_REUSEPORT fails while anyone listens there, with or without it.
    """
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return f"listen.host {host!r}: cannot resolve it ({exc.strerror})"
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    for family, kind, proto, _name, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # As every server does: a connection of a stopped server in TIME_WAIT does
            # not hold the port.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return (
                        f"{where} is in use: another process listens there (a bastion "
                        "already running?). Stop it or change listen.port; --reuse-port "
                        "shares the port on purpose (granian only)"
                    )
                if exc.errno == errno.EACCES:
                    return f"{where}: permission denied (a port below 1024 needs privileges)"
                # Another address of the name may be unusable here (::1 without IPv6):
                # the server reports it if it matters.
    return None


def checked_reload() -> bool:
    """On SIGHUP: the config file as it is now, if a gateway starts from it, becomes what
    new workers serve (True); else the reason goes to standard error and the workers
    keep serving the previous one (False)."""
    path = os.environ.get(CONFIG_ENV, "bastion.yaml")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem: str | None = f"{path}: cannot read: {exc}"
    else:
        problem = preflight(path, text)
    if problem is not None:
        print(
            f"bastion: reload refused, still serving the previous configuration:\n{problem}",
            file=sys.stderr,
            flush=True,
        )
        return False
    os.environ[CONFIG_TEXT_ENV] = text  # what the new workers read
    print(f"bastion: reloading {path}", file=sys.stderr, flush=True)
    return True


def _with_checked_reload(server: type[Any]) -> type[Any]:
    """granian's server class, checking the config before a reload's respawn."""

    class CheckedReload(server):  # type: ignore[misc]
        """granian respawns its workers on SIGHUP; bastion first checks the config they
        would start from (a bad one made every worker exit: the whole server stopped)."""

        def _reload(self, *args: Any, **kwargs: Any) -> Any:
            if checked_reload():
                return super()._reload(*args, **kwargs)
            self.reload_signal = False
            self.main_loop_interrupt.clear()
            return None

    return CheckedReload


def run_granian(spec: dict[str, Any]) -> None:
    from granian.constants import HTTPModes, Interfaces, Loops, SSLProtocols
    from granian.http import HTTP1Settings, HTTP2Settings
    from granian.log import LogLevels
    from granian.server import Server

    limit = head_limit(spec)

    _with_checked_reload(Server)(
        APP_FACTORY,
        address=spec["host"],
        port=spec["port"],
        interface=Interfaces.RSGI if spec.get("interface") == "rsgi" else Interfaces.ASGI,
        workers=spec["workers"],
        loop=Loops.uvloop,
        factory=True,
        log_level=LogLevels.warning,
        ssl_cert=Path(spec["cert"]) if spec.get("cert") else None,
        ssl_key=Path(spec["key"]) if spec.get("key") else None,
        ssl_protocol_min=SSLProtocols.tls13 if spec.get("min_tls") == "1.3" else SSLProtocols.tls12,
        websockets=bool(spec.get("websockets")),
        # A worker that dies (the OOM killer, a crash) is started again; without this
        # granian stopped the whole server. A crash loop (again within 5.5 s) still ends it.
        respawn_failed_workers=True,
        # HTTP/1.1 only unless the config asks for HTTP/2: granian's auto mode reads a
        # connection's first bytes with no deadline (a silent connection is held for
        # good); HTTP/1 alone starts the head deadline when the connection opens.
        http=HTTPModes.auto if spec.get("http2") else HTTPModes.http1,
        # granian's defaults buffer up to ~410 KiB of an HTTP/1 head and decode up to
        # 16 MiB of HTTP/2 header list per stream: a few KiB of HPACK references to one
        # indexed field then cost the worker megabytes each (an "HPACK bomb").
        http1_settings=HTTP1Settings(
            max_buffer_size=max(limit, 8192),  # hyper: >= 8 KiB
            header_read_timeout=int(float(spec["head_timeout"]) * 1000),
        ),
        http2_settings=HTTP2Settings(max_headers_size=limit),
    ).serve()


def run_uvicorn(spec: dict[str, Any]) -> None:
    import uvicorn

    from bastion import _uvicorn

    os.environ[_uvicorn.ENV] = str(spec["head_timeout"])  # read in every worker
    if spec["workers"] == 1:
        # uvicorn leaves SIGHUP at its default, which ended the server; with several
        # workers it restarts them, from the configuration checked at start.
        signal.signal(signal.SIGHUP, _no_reload)
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        # h11 bounds a request's head's size (httptools, picked when installed, does
        # not), and bastion's subclass its time (uvicorn does not).
        http=f"{_uvicorn.__name__}:{_uvicorn.HeadDeadlineProtocol.__name__}",
        h11_max_incomplete_event_size=head_limit(spec),
        # bastion reads X-Forwarded-* itself, from the peers its config trusts only;
        # uvicorn's own handling trusts loopback and would rewrite the peer first.
        proxy_headers=False,
        host=spec["host"],
        port=spec["port"],
        workers=spec["workers"],
        loop="uvloop",
        log_level="warning",
        access_log=False,
        ssl_certfile=spec.get("cert"),
        ssl_keyfile=spec.get("key"),
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
        ssl_ciphers="ECDHE+AESGCM:ECDHE+CHACHA20",
        ws="wsproto" if spec.get("websockets") else "none",
        ws_max_size=int(spec.get("ws_max_bytes", 1024 * 1024)),
    )


def _no_reload(signum: int, frame: object) -> None:
    print(
        "bastion: SIGHUP ignored: uvicorn does not reload; restart bastion to apply a new "
        "configuration (granian, the default server, reloads it)",
        file=sys.stderr,
        flush=True,
    )


def main() -> None:
    server, spec = sys.argv[1], json.loads(sys.argv[2])
    with contextlib.suppress(KeyboardInterrupt):
        (run_uvicorn if server == "uvicorn" else run_granian)(spec)


if __name__ == "__main__":
    main()
