"""``bastion scan --self`` against a real, hardened ``bastion serve`` (not a stub).

The deployment comes from tests/_deploy (users, API keys, an issuer), in front of the
demo echo upstream, with ``forwarded.trusted_proxies: []`` (the scanner is a direct
client). bastion's own deployment must report nothing above "info".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from bastion.cli import app
from bastion.scan.checks._sockets import EVIL
from tests._deploy import PASSWORD, Deployment, base_config, make_deployment
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


@contextlib.contextmanager
def _serving(folder: Path, websocket_origins: list[str] | None = None) -> Iterator[Deployment]:
    """bastion serve over tests/_deploy's deployment, with a WebSocket route ``/live``
    (Basic among its methods) and, given ``websocket_origins``, a route ``/lax`` that
    lists them."""
    port = free_port()
    with demo_upstream() as upstream:
        socket = {"upstream": upstream, "auth": ["jwt", "api_key", "basic"], "websocket": True}
        routes = [{"name": "live", "path_prefix": "/live", **socket}]
        if websocket_origins is not None:
            lax = {"name": "lax", "path_prefix": "/lax", "websocket_origins": websocket_origins}
            routes.append({**lax, **socket})
        deployment = asyncio.run(
            make_deployment(
                folder,
                upstream,
                listen={"host": "0.0.0.0", "port": port},
                forwarded={"trusted_proxies": []},
                routes=[*routes, *base_config(upstream)["routes"]],
            )
        )
        with bastion_serve(deployment.config_file, port):
            yield deployment


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with _serving(tmp_path_factory.mktemp("self")) as deployment:
        yield deployment


def test_self_scan_of_a_hardened_bastion_reports_nothing_above_info(
    deployment: Deployment, tmp_path: Path
) -> None:
    result = _self_scan(
        deployment,
        tmp_path,
        ENDPOINTS,
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
        "--fail-on",
        "low",
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


def test_websockets_of_bastion_are_not_hijackable_unless_misconfigured(tmp_path: Path) -> None:
    """Basic on a WebSocket route is same-origin by default: the scanner's handshake from
    another origin with alice's Basic credentials is refused (and audited). A route that
    lists that origin (misconfigured on purpose) is reported; no socket opens without a
    credential. Its own deployment: the self-scan's forged credentials would have this
    address throttled."""
    with _serving(tmp_path / "ws", websocket_origins=[EVIL]) as deployment:
        report = _scan_websockets(deployment, tmp_path)
    assert report["errors"] == {}
    found = [(f["check"], f["endpoint"].rsplit("/", 2)[-2]) for f in report["findings"]]
    assert found == [("websocket_origin", "lax")]
    (finding,) = report["findings"]
    assert finding["severity"] == "high"
    assert "101" in finding["evidence"][0]["response"]
    refused = [
        json.loads(line)
        for line in deployment.audit_log.read_text().splitlines()
        if '"origin_not_allowed"' in line
    ]
    assert refused
    assert all(e["route"] == "live" for e in refused)


def _scan_websockets(deployment: Deployment, tmp_path: Path) -> dict[str, Any]:
    result = _self_scan(
        deployment,
        tmp_path,
        "GET /live/feed\nGET /lax/feed\n",
        "--auth",
        f"alice=basic:alice:{PASSWORD}",
        "--checks",
        "websocket_origin,websocket_unauthenticated",
    )
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _self_scan(deployment: Deployment, tmp_path: Path, endpoints: str, *args: str) -> Result:
    """``bastion scan --self`` of ``deployment`` over ``endpoints``, unpaced, as JSON."""
    listed = tmp_path / "endpoints.txt"
    listed.write_text(endpoints)
    return CliRunner().invoke(
        app,
        [
            "scan",
            "--self",
            "--config",
            str(deployment.config_file),
            "--endpoints",
            str(listed),
            "--rps",
            "500",
            "--format",
            "json",
            "--quiet",
            *args,
        ],
    )
