"""``bastion scan --self`` against a real, hardened ``bastion serve`` (not a stub).

The deployment comes from tests/_deploy (users, API keys, an issuer), in front of the
demo echo upstream, with ``forwarded.trusted_proxies: []`` (the scanner is a direct
client). bastion's own deployment must report nothing above "info".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.cli import app
from tests._deploy import Deployment, make_deployment
from tests._procs import bastion_serve, demo_upstream
from tests._services import free_port

ENDPOINTS = """\
GET /api/me
GET /api/items/{item_id}
POST /api/items
GET /api/admin/users
GET /api/reports/daily
GET /public/status
"""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("self")
    port = free_port()
    with demo_upstream() as upstream:
        deployment = asyncio.run(
            make_deployment(
                folder,
                upstream,
                listen={"host": "0.0.0.0", "port": port},
                forwarded={"trusted_proxies": []},
            )
        )
        with bastion_serve(deployment.config_file, port):
            yield deployment


def test_self_scan_of_a_hardened_bastion_reports_nothing_above_info(
    deployment: Deployment, tmp_path: Path
) -> None:
    endpoints = tmp_path / "endpoints.txt"
    endpoints.write_text(ENDPOINTS)
    result = CliRunner().invoke(
        app,
        [
            "scan",
            "--self",
            "--config",
            str(deployment.config_file),
            # Names equal to the subjects: the echo's X-Bastion-Subject names each identity,
            # so /api/me is an identity endpoint and the JWT and BOLA probes have an oracle.
            "--auth",
            f"bob=bearer:{deployment.jwt(sub='bob')}",
            "--auth",
            f"alice=apikey:X-API-Key:{deployment.api_key}",
            "--auth",
            f"carol=apikey:X-API-Key:{deployment.reports_key}",
            "--auth",
            f"root=apikey:X-API-Key:{deployment.admin_key}",
            "--admin",
            "root",
            "--endpoints",
            str(endpoints),
            "--rps",
            "500",
            "--format",
            "json",
            "--quiet",
            "--fail-on",
            "low",
        ],
    )
    report = json.loads(result.stdout)
    above_info = [
        (f["check"], f["title"], f["severity"])
        for f in report["findings"]
        if f["severity"] != "info"
    ]
    assert above_info == []
    assert result.exit_code == 0
    assert report["errors"] == {}
    assert report["requests_sent"] > 80  # the JWT forgeries ran against /api/me
    # What is left is the plain-HTTP listener on loopback (informational).
    assert {f["check"] for f in report["findings"]} <= {"transport"}
