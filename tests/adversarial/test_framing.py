"""Framing an attacker or a broken client controls, through every documented front door:
bodies that never come, bodies cut short, two framings at once, a request hidden in a
body. Each is a clear 4xx (or a closed connection), never a 5xx, never a request the
upstream sees that bastion did not decide, never an upstream connection held for good.
"""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.adversarial import _raw
from tests.adversarial.conftest import FrontDoor


def _upstream_open(door: FrontDoor) -> int:
    reply = _raw.send(door.upstream_port, b"GET /__stats HTTP/1.1\r\nConnection: close\r\n\r\n")
    return int(reply.json()["open"])


def _reply_or_close(sock: socket.socket) -> int:
    """The status the front door answers with, or 400 when it just closes."""
    try:
        return _raw.read_reply(sock).status
    except (ConnectionError, TimeoutError):
        return 400


def test_expect_100_continue_from_clients_that_leave(door: FrontDoor) -> None:
    """Issue: 260 POSTs with ``Expect: 100-continue`` and 3 body bytes, clients gone,
    held 256 upstream connections until the upstream restarted (every later request 504)."""
    if door.kind == "middleware":
        pytest.skip("the middleware's app is in-process: no upstream connection to hold")
    before = _upstream_open(door)
    head = b"POST /public/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
    sockets = []
    for _ in range(20):
        sock = _raw.connect(door.port)
        sock.sendall(head + b"Content-Length: 100\r\n\r\nabc")
        sockets.append(sock)
    time.sleep(0.5)
    for sock in sockets:
        sock.close()
    deadline = time.monotonic() + 10
    while _upstream_open(door) > before + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _upstream_open(door) <= before + 1
    assert _raw.request(door.port, "GET", "/public/x").reached_upstream


@pytest.mark.parametrize(
    "body",
    [
        b"Content-Length: 100\r\n\r\n0123456789",  # short, then half-close
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nabc",  # a chunk cut short
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\nzz\r\n",  # not a chunk size
    ],
    ids=["short-content-length", "truncated-chunk", "bad-chunk-size"],
)
def test_a_body_cut_short_is_the_clients_error(door: FrontDoor, body: bytes) -> None:
    """Issue: under granian these were 502 and counted as upstream errors (uvicorn: 400).
    Where bastion streams the body (its proxy, the middleware's app) it says 400 or 408;
    nginx and Caddy read the body themselves: whatever they do is not a bastion error."""
    errors_before = _upstream_errors(door)
    with _raw.connect(door.port) as sock:
        sock.sendall(b"POST /public/x HTTP/1.1\r\nHost: x\r\n" + body)
        sock.shutdown(socket.SHUT_WR)
        status = _reply_or_close(sock)
    if door.kind in ("proxy", "middleware"):
        assert status in (400, 408), (door.name, status)
    assert status != 500
    assert _upstream_errors(door) == errors_before


def _upstream_errors(door: FrontDoor) -> float:
    """bastion_upstream_errors_total, read from bastion's /metrics (loopback may read it)."""
    port = door.deployment.config.listen.port
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    lines = [line for line in text.splitlines() if line.startswith("bastion_upstream_errors")]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


SMUGGLED = b"GET /admin/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
ATTEMPTS = {
    "cl-te": b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-cl": b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
    "te-obfuscated": b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-twice": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
    "te-gzip": b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "cl-twice": b"Content-Length: 0\r\nContent-Length: 44\r\n\r\n" + SMUGGLED,
    "cl-list": b"Content-Length: 44, 0\r\n\r\n" + SMUGGLED,
    "cl-plus": b"Content-Length: +44\r\n\r\n" + SMUGGLED,
    "te-folded": b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-space-name": b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-underscore": b"Transfer_Encoding: chunked\r\nContent-Length: 44\r\n\r\n" + SMUGGLED,
}


@pytest.mark.parametrize("attempt", sorted(ATTEMPTS))
def test_no_request_is_smuggled_past_the_decision(door: FrontDoor, attempt: str) -> None:
    """Two framings, obfuscated ones and a request in the body: refused, or read one way
    by every hop; the upstream never receives a request for /admin nobody decided."""
    raw = b"POST /public/x HTTP/1.1\r\nHost: x\r\n" + ATTEMPTS[attempt]
    with _raw.connect(door.port) as sock:
        sock.sendall(raw)
        first = _reply_or_close(sock)
        second = _reply_or_close(sock) if first < 400 else 400
    # 501: a transfer coding the server does not implement (RFC 9112 §6.1).
    assert first < 500 or first == 501, (door.name, attempt, first)
    assert second < 500, (door.name, attempt, second)
    time.sleep(0.2)
    assert not [r for r in door.received() if "smuggled" in r["target"].lower()]
