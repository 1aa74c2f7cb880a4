"""Issue: ``X_Bastion_Roles: admin`` reached a WSGI upstream as ``HTTP_X_BASTION_ROLES``
merged with the real header ("admin,"). Here the upstream is Python's own wsgiref, behind
each front door that has an upstream of its own (the middleware's app is ASGI)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests._proxies import caddy, nginx
from tests.adversarial import _raw
from tests.adversarial.conftest import FrontDoor, forward_auth, proxy

WSGI = "tests.adversarial.wsgi_upstream"
SETUPS = {
    "proxy": lambda folder, stack: proxy(folder, stack, module=WSGI),
    "nginx": lambda folder, stack: forward_auth(folder, stack, "nginx", nginx, WSGI),
    "caddy": lambda folder, stack: forward_auth(folder, stack, "caddy", caddy, WSGI),
}


@pytest.fixture(scope="module", params=sorted(SETUPS))
def wsgi_door(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FrontDoor]:
    with contextlib.ExitStack() as stack:
        folder = tmp_path_factory.mktemp(f"wsgi-{request.param}")
        yield SETUPS[request.param](folder, stack)


@pytest.mark.parametrize(
    "name",
    ["X_Bastion_Roles", "X_BASTION_ROLES", "x_bastion_subject", "X_Forwarded_For", "X_Real_IP"],
)
def test_an_underscore_header_never_reaches_a_wsgi_environ(wsgi_door: FrontDoor, name: str) -> None:
    key = wsgi_door.deployment.api_key
    reply = _raw.request(wsgi_door.port, "GET", "/api/x", [("X-API-Key", key), (name, "admin")])
    assert reply.status in (200, 400)
    if reply.status == 400:
        assert wsgi_door.name in ("proxy", "caddy")  # bastion refused it (nginx drops it)
        return
    environ = reply.json()["environ"]  # nginx dropped the name (underscores_in_headers off)
    assert environ["HTTP_X_BASTION_SUBJECT"] == "alice"
    assert "admin" not in environ.get("HTTP_X_BASTION_ROLES", "")
    assert "admin" not in environ.get("HTTP_X_FORWARDED_FOR", "")
    assert "admin" not in environ.get("HTTP_X_REAL_IP", "")


def test_a_dash_header_from_the_client_never_reaches_a_wsgi_environ(wsgi_door: FrontDoor) -> None:
    key = wsgi_door.deployment.api_key
    headers = [("X-API-Key", key), ("X-Bastion-Roles", "admin")]
    environ = _raw.request(wsgi_door.port, "GET", "/api/x", headers).json()["environ"]
    assert environ["HTTP_X_BASTION_SUBJECT"] == "alice"
    assert environ.get("HTTP_X_BASTION_ROLES", "") == ""
