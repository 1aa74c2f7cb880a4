"""One place decides who sent a request (``Trust.remote`` in gateway/_asgi.py): the
client's address and whether it came over TLS, a trusted proxy's ``X-Forwarded-*``
honoured and anyone else's ignored. Every other reader of the TCP peer or the raw scheme
was a way to judge a proxy's clients as the proxy (issue 15: login lockouts for everyone,
audit events with the proxy's address, Basic accepted over plain HTTP, ``/metrics`` open
through a front proxy)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from bastion.gateway._asgi import Remote, Trust, remote_of

SRC = Path(__file__).parents[2] / "src" / "bastion"
# What reading the peer or the scheme looks like: Starlette's request.client and
# request.url.scheme, the ASGI scope's "client"/"scheme", granian's RSGI scope, the
# forwarding headers themselves.
READERS = re.compile(
    r"""\.client\.(host|port)\b|\.client\[0\]|\bscope\[["'](client|scheme)["']\]"""
    r"""|\bscope\.get\(["'](client|scheme)["']|\.url\.scheme\b|\bscope\.(client|scheme)\b"""
    r"""|\.get\(["']x-(forwarded-for|forwarded-proto|real-ip)["']|\bpeer_address\("""
)
ALLOWED = {
    "gateway/_asgi.py": "the one place: Trust.remote, client_ip, peer_address",
    "gateway/_rsgi.py": "builds the ASGI scope from granian's RSGI one (copies, decides nothing)",
    # The forward-auth request describes another request (the one nginx holds); its
    # caller must be a trusted proxy (refused otherwise) and its address goes through
    # Trust.client_ip. Its X-Forwarded-Proto is that request's scheme.
    "gateway/forward_auth.py": "the forwarded request of a trusted caller",
}


def readers() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        name = path.relative_to(SRC).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if READERS.search(line):
                found.setdefault(name, []).append(f"{number}: {line.strip()}")
    return found


def test_no_module_but_the_one_reads_the_peer_or_the_scheme() -> None:
    stray = {name: lines for name, lines in readers().items() if name not in ALLOWED}
    assert stray == {}, "use bastion.gateway._asgi.remote_of / Trust.remote instead"


@pytest.mark.parametrize(
    "line",
    [  # the readers issue 15 found: the search must see each
        'ip = request.client.host if request.client else ""',
        'secure=request.url.scheme == "https",',
        'client = scope.get("client")',
        'secure = scope["scheme"] == "https"',
        'proto = headers.get("x-forwarded-proto", "http").lower()',
        "peer = peer_address(scope)",
    ],
)
def test_the_search_sees_the_known_readers(line: str) -> None:
    assert READERS.search(line)


TRUST = Trust([ipaddress.ip_network("127.0.0.1/32")])


def scope(peer: str, scheme: str = "http", **headers: str) -> dict[str, object]:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "client": (peer, 5000), "scheme": scheme, "headers": raw}


@pytest.mark.parametrize(
    ("request_scope", "expected"),
    [
        # a trusted proxy relays a remote client, over TLS at the proxy or not
        (scope("127.0.0.1", x_forwarded_for="203.0.113.7"), Remote("203.0.113.7", False, True)),
        (
            scope("127.0.0.1", x_forwarded_for="203.0.113.7", x_forwarded_proto="https"),
            Remote("203.0.113.7", True, True),
        ),
        # anyone else's X-Forwarded-* is ignored: the peer is the client, its scheme its own
        (
            scope("198.51.100.9", x_forwarded_for="127.0.0.1", x_forwarded_proto="https"),
            Remote("198.51.100.9", False, False),
        ),
        (scope("198.51.100.9", "https"), Remote("198.51.100.9", True, False)),
        # a TLS connection stays TLS whatever a proxy says
        (scope("127.0.0.1", "https", x_forwarded_proto="http"), Remote("127.0.0.1", True, True)),
    ],
)
def test_remote(request_scope: dict[str, object], expected: Remote) -> None:
    assert TRUST.remote(request_scope) == expected
    assert remote_of(request_scope) == expected  # kept for the rest of the request


def test_an_unresolved_request_is_refused_not_guessed() -> None:
    with pytest.raises(LookupError):
        remote_of(scope("127.0.0.1"))
