"""``bastion serve --server granian|uvicorn``: each real server serving bastion, and
bastion alone deciding which peers may speak for a client (uvicorn's own X-Forwarded-For
handling trusts loopback by default and would rewrite the peer before bastion saw it)."""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from tests._deploy import Deployment, make_deployment
from tests._procs import bastion_serve
from tests._services import free_port

FORWARDED = {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/api/orders/42"}
SERVERS = pytest.mark.parametrize("server", ["granian", "uvicorn"])


def _serve(
    tmp_path: Path, port: int, trusted: list[str], server: str
) -> tuple[Deployment, AbstractContextManager[str]]:
    d = asyncio.run(
        make_deployment(
            tmp_path / "d",
            "http://127.0.0.1:9",
            listen={"host": "127.0.0.1", "port": port},
            forwarded={"trusted_proxies": trusted},
        )
    )
    return d, bastion_serve(d.config_file, port, "--server", server)


@SERVERS
def test_forward_auth_from_a_trusted_loopback_proxy(tmp_path: Path, server: str) -> None:
    port = free_port()
    d, serving = _serve(tmp_path, port, ["127.0.0.1/32"], server)
    with serving as base:
        assert f"({server}" in (d.config_file.parent / "serve.log").read_text()
        key = {"X-API-Key": d.api_key}
        allowed = httpx.get(f"{base}/_bastion/auth", headers={**FORWARDED, **key})
        assert allowed.status_code == 200
        assert allowed.headers["x-bastion-credential"] == "api_key"
        refused = httpx.get(f"{base}/_bastion/auth", headers={**FORWARDED, "X-API-Key": "bst_x"})
        assert refused.status_code == 401


@SERVERS
def test_a_loopback_client_cannot_pose_as_a_trusted_proxy_through_x_forwarded_for(
    tmp_path: Path, server: str
) -> None:
    # Only 203.0.113.0/24 may forward. A local process sending X-Forwarded-For with that
    # address is still 127.0.0.1 to bastion: not a trusted forwarder, so no decision.
    port = free_port()
    d, serving = _serve(tmp_path, port, ["203.0.113.0/24"], server)
    with serving as base:
        spoofed = {**FORWARDED, "X-API-Key": d.api_key, "X-Forwarded-For": "203.0.113.9"}
        answer = httpx.get(f"{base}/_bastion/auth", headers=spoofed)
        assert answer.status_code == 403
        assert answer.headers["x-bastion-error"] == "forbidden"
