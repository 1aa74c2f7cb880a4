"""docs/security.md, "Who may set which header": one test per row, each sending the
header as an untrusted client would, through every documented front door.

A request either is refused (4xx, never 5xx) or reaches the upstream; when it reaches it,
no reading an upstream may apply (tests/adversarial/_upstream_view.py) finds a protected
resource, a spoofed identity, address, scheme or host, or the client's own copy of a
header only a proxy may set.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests._deploy import PASSWORD
from tests.adversarial import _raw, _upstream_view
from tests.adversarial.conftest import FrontDoor

SPOOFED_IP = "203.0.113.66"


def send(door: FrontDoor, method: str, target: str, *headers: tuple[str, str]) -> _raw.Reply:
    reply = _raw.request(door.port, method, target, list(headers))
    assert reply.status < 500, (door.name, reply.status, reply.body[:300])
    return reply


def received(reply: _raw.Reply) -> dict[str, Any]:
    assert reply.reached_upstream, (reply.status, reply.headers, reply.body[:300])
    record: dict[str, Any] = reply.json()
    return record


def values(record: dict[str, Any], key: str) -> list[str]:
    """Every value of one header as a CGI-style upstream reads it (``_`` as ``-``)."""
    wanted = key.lower().replace("_", "-")
    return [v for n, v in record["headers"] if n.lower().replace("_", "-") == wanted]


def assert_public_only(reply: _raw.Reply) -> None:
    """Refused, or every reading of what reached the upstream is public."""
    if reply.reached_upstream:
        assert _upstream_view.demands(reply.json()) == set(), reply.json()
    else:
        assert 400 <= reply.status < 500


def assert_refused_or_removed(reply: _raw.Reply, name: str) -> None:
    """Refused (400: bastion saw the header), or passed without it (a snippet removed it;
    nginx drops names with "_")."""
    if reply.reached_upstream:
        assert values(reply.json(), name) == []
        assert_public_only(reply)
    else:
        assert reply.status == 400


def test_legitimate_requests_pass(door: FrontDoor) -> None:
    """The control: without it every refusal test below would pass on a broken set-up."""
    d = door.deployment
    public = received(send(door, "GET", "/public/x"))
    assert values(public, "x-bastion-credential") in (["anonymous"], [])
    alice = received(send(door, "GET", "/api/x", ("X-API-Key", d.api_key)))
    assert values(alice, "x-bastion-subject") == ["alice"]
    root = received(send(door, "DELETE", "/admin/users/1", ("X-API-Key", d.admin_key)))
    assert values(root, "x-bastion-subject") == ["root"]
    assert received(send(door, "POST", "/items", ("X-HTTP-Method-Override", "POST")))
    basic = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert send(door, "GET", "/admin/x", ("Authorization", basic)).status == 403


@pytest.mark.parametrize(
    "pair", [("X-Forwarded-Method", "X-Forwarded-Uri"), ("X-Original-Method", "X-Original-URI")]
)
@pytest.mark.parametrize(("method", "target"), [("GET", "/admin/secret"), ("DELETE", "/admin/u/1")])
def test_original_request_headers_from_a_client(
    door: FrontDoor, pair: tuple[str, str], method: str, target: str
) -> None:
    """Rows X-Forwarded-Method/-Uri and X-Original-Method/-URI: only the proxy in front
    describes the request it holds; a client's pair decides nothing."""
    reply = send(door, method, target, (pair[0], "GET"), (pair[1], "/public/x"))
    assert_public_only(reply)
    assert not reply.reached_upstream


@pytest.mark.parametrize(
    "name",
    [
        "X-Bastion-Roles",
        "X_Bastion_Roles",
        "x-bastion-subject",
        "X_BASTION_SUBJECT",
        "X-Bastion-Credential",
        "X-Bastion-Assertion",
        "X_Bastion_Assertion",
    ],
)
def test_identity_headers_from_a_client(door: FrontDoor, name: str) -> None:
    """Row X-Bastion-*: only bastion asserts who the client is, under any spelling."""
    reply = send(door, "GET", "/public/x", (name, "spoofed-admin"))
    if not reply.reached_upstream:
        assert reply.status == 400  # an underscore spelling: refused in every front door
        assert "_" in name
        return
    record = reply.json()
    env = _upstream_view.environ(record)
    assert not [v for k, v in env.items() if k.startswith("HTTP_X_BASTION") and "spoofed" in v]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Forwarded-For", SPOOFED_IP),
        ("X_Forwarded_For", SPOOFED_IP),
        ("X-Real-IP", SPOOFED_IP),
        ("Forwarded", f"for={SPOOFED_IP};proto=https"),
        ("True-Client-IP", SPOOFED_IP),
        ("CF-Connecting-IP", SPOOFED_IP),
        ("X-Client-IP", SPOOFED_IP),
        ("X-Cluster-Client-IP", SPOOFED_IP),
        ("Fastly-Client-IP", SPOOFED_IP),
    ],
)
def test_address_headers_from_a_client(door: FrontDoor, name: str, value: str) -> None:
    """Rows X-Forwarded-For, X-Real-IP and the other address headers: bastion and the
    upstream learn the client's address from the proxy only."""
    reply = send(door, "GET", "/public/x", (name, value))
    if not reply.reached_upstream:
        assert reply.status == 400
        assert "_" in name
        return
    record = reply.json()
    assert SPOOFED_IP not in str(record["headers"])
    request_id = values(record, "x-bastion-request-id")[0]
    assert door.audit_of(request_id)["client_ip"] == _raw.CLIENT_ADDRESS


SCHEME_AND_HOST = [
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Ssl", "on"),
    ("X-Forwarded-Scheme", "https"),
    ("X-Url-Scheme", "https"),
    ("Front-End-Https", "on"),
    ("X-Forwarded-Host", "spoofed.example"),
    ("X-Forwarded-Port", "8443"),
    ("X-Forwarded-Prefix", "/spoofed"),
    ("X-Forwarded-Server", "spoofed.example"),
    ("X-Host", "spoofed.example"),
]


@pytest.mark.parametrize(("name", "value"), SCHEME_AND_HOST)
def test_scheme_and_host_headers_from_a_client(door: FrontDoor, name: str, value: str) -> None:
    """Rows X-Forwarded-Proto, X-Forwarded-Host and their kin: a client on plain HTTP
    cannot make bastion or the upstream believe it used TLS or another host."""
    record = received(send(door, "GET", "/public/x", (name, value)))
    for key in {n for n, _ in SCHEME_AND_HOST}:
        assert value not in values(record, key) or (key.lower() == "x-forwarded-host" and False)
    assert values(record, "x-forwarded-proto") in (["http"], [])
    request_id = values(record, "x-bastion-request-id")[0]
    assert door.audit_of(request_id).get("secure") in (False, None)


@pytest.mark.parametrize(
    "name", ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X_HTTP_Method"]
)
@pytest.mark.parametrize("value", ["DELETE", "delete", "PUT, DELETE"])
def test_method_override_headers_from_a_client(door: FrontDoor, name: str, value: str) -> None:
    """Row X-HTTP-Method-Override and kin: a POST that a public route allows cannot become
    a DELETE that only admins may send, whichever upstream honours the header."""
    assert_refused_or_removed(send(door, "POST", "/items", (name, value)), name)


@pytest.mark.parametrize("name", ["X-Original-URL", "X-Rewrite-URL", "X_Original_URL"])
@pytest.mark.parametrize("value", ["/admin/secret", "http://127.0.0.1/admin/secret", "/ADMIN"])
def test_url_override_headers_from_a_client(door: FrontDoor, name: str, value: str) -> None:
    """Rows X-Original-URL and X-Rewrite-URL: Symfony and IIS route on them; a public
    request cannot name a protected path there."""
    assert_refused_or_removed(send(door, "GET", "/public/x", (name, value)), name)


def test_request_id_from_a_client(door: FrontDoor) -> None:
    """Row X-Request-Id: kept only from a trusted proxy; a client cannot choose the id
    its audit line is filed under."""
    record = received(send(door, "GET", "/public/x", ("X-Request-Id", "spoofedrequestid1")))
    assert values(record, "x-bastion-request-id") != ["spoofedrequestid1"]


@pytest.mark.parametrize("name", ["access_token", "api_key", "ACCESS_TOKEN", "access%5Ftoken"])
def test_credentials_in_the_query(door: FrontDoor, name: str) -> None:
    """Row query string: a credential in the URL is refused whichever method the route
    then picks (here an API key in its header)."""
    d = door.deployment
    token = d.jwt()
    target = f"/api/x?{name}={token}"
    reply = send(door, "GET", target, ("X-API-Key", d.api_key))
    assert reply.status == 401
    assert not [r for r in door.received() if token in r["target"]]


def test_credentials_do_not_reach_the_upstream(door: FrontDoor) -> None:
    """Rows Authorization and X-API-Key: the upstream gets bastion's assertion, never
    the client's credential (the middleware's app is the protected code itself, and
    reads the request as sent)."""
    if door.kind == "middleware":
        pytest.skip("the middleware's app is in-process and sees the request as sent")
    d = door.deployment
    basic = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    for header in [("X-API-Key", d.api_key), ("Authorization", basic)]:
        record = received(send(door, "GET", "/api/x", header))
        assert values(record, header[0]) == []
