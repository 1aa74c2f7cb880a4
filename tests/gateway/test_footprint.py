"""What a serving worker loads: its memory is a benchmark target (docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests._deploy import Deployment

PROBE = """
import asyncio, json, sys
from bastion.config import load_config
from bastion.gateway.app import GatewayApp

app = GatewayApp(load_config(sys.argv[1]))
asyncio.run(app.startup())
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def loaded_by_worker(config_file: Path) -> set[str]:
    """The top-level modules a started worker of this config has loaded."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_worker_without_remote_issuers_loads_no_http_client_nor_cli(
    deployment: Deployment,
) -> None:
    # httpx imports its command line (click, rich, pygments: ~9 MB per worker); it is
    # needed only for JWKS/discovery fetches and external login, so it loads lazily.
    loaded = loaded_by_worker(deployment.config_file)
    assert {"bastion", "aiohttp", "sqlalchemy"} <= loaded  # proxied routes: aiohttp's client
    assert not loaded & {"httpx", "click", "rich", "pygments", "typer", "alembic"}


def test_a_worker_that_only_decides_loads_no_proxy_client(deployment: Deployment) -> None:
    # Behind nginx or Caddy no route has an upstream: aiohttp (~9 MB a worker) stays out.
    data = yaml.safe_load(deployment.config_file.read_text())
    for route in data["routes"]:
        route.pop("upstream", None)
    deployment.config_file.write_text(yaml.safe_dump(data))
    loaded = loaded_by_worker(deployment.config_file)
    assert {"bastion", "sqlalchemy", "authlib"} <= loaded  # started, authorization server on
    assert "aiohttp" not in loaded


def test_a_worker_without_the_authorization_server_loads_none_of_it(
    deployment: Deployment,
) -> None:
    data = yaml.safe_load(deployment.config_file.read_text())
    data["oauth"] = {"enabled": False}
    deployment.config_file.write_text(yaml.safe_dump(data))
    loaded = loaded_by_worker(deployment.config_file)
    assert {"bastion", "sqlalchemy", "joserfc"} <= loaded  # started, verifies JWTs
    assert not loaded & {"authlib", "starlette", "jinja2", "webauthn", "segno", "pyotp"}


def test_the_servers_parent_process_loads_neither_config_nor_gateway() -> None:
    # `bastion serve` becomes `python -m bastion._server`, the parent of the workers: it
    # only starts the server, so `import bastion` must not load the config's pydantic
    # models or the gateway (~23 MB more in that process before, counted in the RSS row).
    probe = (
        "import json, sys, bastion._server, granian.server;"
        "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules} | set(sys.modules))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(done.stdout))
    assert loaded.isdisjoint({"pydantic", "yaml", "bastion.config", "bastion.gateway"})
    assert "bastion._server" in loaded
