"""``bastion serve --server granian|uvicorn``: each real server serving bastion, and
bastion alone deciding which peers may speak for a client (uvicorn's own X-Forwarded-For
handling trusts loopback by default and would rewrite the peer before bastion saw it);
and each server closing a connection whose request head does not arrive in time
(``limits.head_timeout_seconds``: uvicorn has no such bound of its own)."""

from __future__ import annotations

import asyncio
import socket
import time
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
    tmp_path: Path, port: int, trusted: list[str], server: str, **overrides: object
) -> tuple[Deployment, AbstractContextManager[str]]:
    d = asyncio.run(
        make_deployment(
            tmp_path / "d",
            "http://127.0.0.1:9",
            forwarded={"trusted_proxies": trusted},
            **{"listen": {"host": "127.0.0.1", "port": port}, **overrides},
        )
    )
    return d, bastion_serve(d.config_file, port, "--server", server)


@SERVERS
def test_forward_auth_from_a_trusted_loopback_proxy(tmp_path: Path, server: str) -> None:
    port = free_port()
    d, serving = _serve(tmp_path, port, ["127.0.0.1/32"], server)
    with serving as base:
        log = (d.config_file.parent / "serve.log").read_text()
        assert f"({server}" in log
        assert "warning" not in log  # one worker: the in-process counters are exact
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


HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: %s\r\n\r\n" % (b"p" * 40)


def _held_for(port: int, pieces: list[bytes], gap: float) -> tuple[float, bytes]:
    """Send ``pieces`` ``gap`` seconds apart, then read until the server closes: (how
    long the connection lived, what the server sent). Stops sending once closed."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    started, answer = time.monotonic(), b""
    try:
        sock.settimeout(gap)
        for piece in pieces:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                data = None
            if data == b"":
                return time.monotonic() - started, answer
            answer += data or b""
            sock.sendall(piece)
        sock.settimeout(20)
        while data := sock.recv(65536):
            answer += data
    except (ConnectionError, OSError):
        pass
    finally:
        sock.close()
    return time.monotonic() - started, answer


@SERVERS
def test_a_request_head_that_does_not_arrive_in_time_is_cut(tmp_path: Path, server: str) -> None:
    port = free_port()
    _d, serving = _serve(
        tmp_path, port, ["127.0.0.1/32"], server, limits={"head_timeout_seconds": 2}
    )
    with serving:
        # A connection that never sends a byte.
        lived, answer = _held_for(port, [], 0.1)
        assert 1.5 < lived < 8
        assert b"200 OK" not in answer
        # A head sent a few bytes at a time, each piece well within any read timeout.
        trickle = [HEAD[i : i + 3] for i in range(0, len(HEAD), 3)]
        lived, answer = _held_for(port, trickle, 0.25)
        assert 1.5 < lived < 8
        assert b"200 OK" not in answer
        # An idle keep-alive connection, and the same trickle after a first request.
        lived, answer = _held_for(port, [HEAD], 0.25)
        assert answer.count(b"200 OK") == 1
        assert lived < 10
        lived, answer = _held_for(port, [HEAD, *trickle], 0.25)
        assert answer.count(b"200 OK") == 1
        assert lived < 10
        # A head in a few pieces that arrives in time is served.
        closing = HEAD.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        lived, answer = _held_for(port, [closing[:20], closing[20:50], closing[50:]], 0.3)
        assert answer.count(b"200 OK") == 1


def test_several_workers_without_redis_are_warned_about(tmp_path: Path) -> None:
    port = free_port()
    listen = {"host": "127.0.0.1", "port": port, "workers": 2}
    d, serving = _serve(tmp_path, port, ["127.0.0.1/32"], "granian", listen=listen)
    with serving as base:
        assert httpx.get(f"{base}/healthz").status_code == 200
        log = " ".join((d.config_file.parent / "serve.log").read_text().split())
        assert "2 worker(s))" in log
        assert "warning: 2 workers count rate limits and failed credentials each on its own" in log
