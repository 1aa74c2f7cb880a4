"""Run the gateway's ASGI app under granian or uvicorn, from a small JSON spec.

``bastion serve`` replaces itself (``exec``) with ``python -m bastion._server``, so the
server's parent process holds only the ASGI server, not the CLI and every command's
imports: the ASGI server forks its workers from this process.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import sys
from pathlib import Path
from typing import Any

APP_FACTORY = "bastion.gateway.app:from_env"


def run_granian(spec: dict[str, Any]) -> None:
    from granian.constants import Interfaces, Loops, SSLProtocols
    from granian.log import LogLevels
    from granian.server import Server

    Server(
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
        websockets=False,
    ).serve()


def run_uvicorn(spec: dict[str, Any]) -> None:
    import uvicorn

    uvicorn.run(
        APP_FACTORY,
        factory=True,
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
        ws="none",
    )


def main() -> None:
    server, spec = sys.argv[1], json.loads(sys.argv[2])
    with contextlib.suppress(KeyboardInterrupt):
        (run_uvicorn if server == "uvicorn" else run_granian)(spec)


if __name__ == "__main__":
    main()
