"""Paths that one reader takes for a public one and another for a protected one: sent
raw (no client library normalises them) through every documented front door, as an
anonymous client and as a user without the admin role.

Each request is refused (4xx) or reaches the upstream with every reading of its path
(tests/adversarial/_upstream_view.py: percent-decoding once or twice, ``;`` parameters,
case, repeated slashes, dot segments, NFKC, backslashes) public for that client.
"""

from __future__ import annotations

import pytest

from tests.adversarial import _raw, _upstream_view
from tests.adversarial.conftest import FrontDoor

PATHS = [
    "/admin/secret",
    "/ADMIN/secret",
    "/Admin/secret",
    "//admin/secret",
    "///admin/secret",
    "/admin;x/secret",
    "/admin;/secret",
    "/;/admin/secret",
    "/public/..;/admin/secret",
    "/public/%2e%2e;/admin/secret",
    "/public/%2E%2E%3B/admin/secret",
    "/public/../admin/secret",
    "/public/%2e%2e/admin/secret",
    "/public/.%2e/admin/secret",
    "/./admin/secret",
    "/%2e/admin/secret",
    "/%61dmin/secret",
    "/%41DMIN/secret",
    "/admin%2fsecret",
    "/public%2f..%2fadmin/secret",
    "/admin%252fsecret",
    "/%252e%252e/admin",
    "/%EF%BD%81dmin/secret",
    "/public/%EF%BC%8E%EF%BC%8E/admin/secret",
    "/public\\..\\admin/secret",
    "/public/%5c../admin/secret",
    "/admin%00/secret",
    "/admin%09/secret",
    "/admin%3bx/secret",
    "/API/x",
    "/api;x",
    "/Items",
    "/public;x/../admin",
    "http://127.0.0.1/admin/secret",
    "*",
]


def _send(door: FrontDoor, method: str, target: str, headers: list[tuple[str, str]]) -> _raw.Reply:
    try:
        reply = _raw.request(door.port, method, target, headers)
    except ConnectionError:
        return _raw.Reply(400, [], b"")  # the front door closed the connection: refused
    assert reply.status < 500, (door.name, target, reply.status, reply.body[:300])
    return reply


@pytest.mark.parametrize("target", PATHS)
def test_anonymous_never_reaches_a_protected_reading(door: FrontDoor, target: str) -> None:
    reply = _send(door, "GET", target, [])
    if reply.reached_upstream:
        assert _upstream_view.demands(reply.json()) == set(), (target, reply.json()["target"])
    else:
        assert 400 <= reply.status < 500


@pytest.mark.parametrize("target", PATHS)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_user_never_reaches_an_admin_reading(door: FrontDoor, target: str, method: str) -> None:
    items = target.replace("admin/secret", "items").replace("/ADMIN", "/ITEMS")
    for path in {target, items}:
        reply = _send(door, method, path, [("X-API-Key", door.deployment.api_key)])
        if reply.reached_upstream:
            assert "admin" not in _upstream_view.demands(reply.json()), (path, reply.json())


def test_canonical_paths_still_pass(door: FrontDoor) -> None:
    """The control: readings that agree are decided as usual."""
    assert _send(door, "GET", "/public/x", []).reached_upstream
    assert _send(door, "GET", "/Public/X", []).reached_upstream  # public in every reading
    assert _send(door, "GET", "/admin/x", []).status == 401
    key = [("X-API-Key", door.deployment.admin_key)]
    assert _send(door, "GET", "/admin/x", key).reached_upstream
    assert _send(door, "GET", "/admin/x/", key).reached_upstream
