"""What a serving worker loads: its memory is a benchmark target (docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests._deploy import Deployment

PROBE = """
import asyncio, json, sys
from bastion.config import load_config
from bastion.gateway.app import GatewayApp

app = GatewayApp(load_config(sys.argv[1]))
asyncio.run(app.startup())
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_a_worker_without_remote_issuers_loads_no_http_client_nor_cli(
    deployment: Deployment,
) -> None:
    # httpx imports its command line (click, rich, pygments: ~9 MB per worker); it is
    # needed only for JWKS/discovery fetches and external login, so it loads lazily.
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(deployment.config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert {"bastion", "aiohttp", "sqlalchemy"} <= loaded  # the probe did start the gateway
    assert not loaded & {"httpx", "click", "rich", "pygments", "typer", "alembic"}
