"""Debian's Caddy with forward_auth in front of bastion and a real upstream, using the
Caddyfile from docs/snippets (only the addresses are substituted)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

import httpx
import pytest

from tests._deploy import PASSWORD, Deployment, base_config, make_deployment
from tests._procs import bastion_serve, demo_upstream
from tests._proxies import caddy
from tests._services import free_port
from tests._ws import check_forward_auth_websockets


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Deployment]]:
    folder = tmp_path_factory.mktemp("caddy-stack")
    with demo_upstream() as upstream:
        bastion_port = free_port()
        routes = base_config(upstream)["routes"]
        # A route that accepts WebSockets: the server then speaks WebSocket, and Caddy's
        # forward-auth requests for handshakes (it copies Upgrade and Connection) arrive
        # at bastion as WebSocket handshakes themselves.
        live = {"name": "live", "path_prefix": "/live", "upstream": upstream}
        routes.insert(0, {**live, "auth": ["api_key", "jwt", "basic"], "websocket": True})
        d = asyncio.run(
            make_deployment(
                folder / "bastion",
                upstream,
                listen={"host": "127.0.0.1", "port": bastion_port},
                routes=routes,
            )
        )
        with (
            bastion_serve(d.config_file, bastion_port),
            caddy(folder, bastion_port, upstream) as port,
        ):
            yield f"http://127.0.0.1:{port}", d


def test_allowed_with_identity_and_no_credentials_upstream(
    stack: tuple[str, Deployment],
) -> None:
    base, d = stack
    response = httpx.get(base + "/api/hello", headers={"X-API-Key": d.api_key}, timeout=10)
    assert response.status_code == 200
    seen = response.json()["headers"]
    assert seen["x-bastion-subject"] == "alice"
    assert seen["x-bastion-credential"] == "api_key"
    assert "x-api-key" not in seen
    assert "{" not in "".join(seen.values())  # no literal Caddy placeholders


def test_jwt_allowed_and_bad_jwt_refused(stack: tuple[str, Deployment]) -> None:
    base, d = stack
    good = httpx.get(base + "/api/hello", headers={"Authorization": f"Bearer {d.jwt()}"})
    assert good.status_code == 200
    bad = httpx.get(base + "/api/hello", headers={"Authorization": f"Bearer {d.jwt()}x"})
    assert bad.status_code == 401
    assert 'error="invalid_token"' in bad.headers["www-authenticate"]


def test_refusals_pass_through_with_their_status(stack: tuple[str, Deployment]) -> None:
    base, d = stack
    assert httpx.get(base + "/api/hello").status_code == 401
    reports = httpx.get(base + "/api/reports/1", headers={"X-API-Key": d.api_key})
    assert reports.status_code == 403
    assert httpx.get(base + "/nowhere", headers={"X-API-Key": d.api_key}).status_code == 404


def test_spoofed_identity_headers_are_dropped(stack: tuple[str, Deployment]) -> None:
    base, _ = stack
    response = httpx.get(
        base + "/public/x",
        headers={"X-Bastion-Subject": "root", "X-Bastion-Roles": "admin"},
        timeout=10,
    )
    seen = response.json()["headers"]
    assert seen["x-bastion-subject"] == "anonymous"
    assert seen.get("x-bastion-roles", "") == ""


def test_websocket_through_caddy_on_routes_that_accept_them(
    stack: tuple[str, Deployment],
) -> None:
    base, d = stack
    alice = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    asyncio.run(check_forward_auth_websockets(base, d.api_key, d.jwt(), alice))
