"""Request heads against the real granian under ``bastion serve``: what the server buffers
of an HTTP/1 head, and the header list an HTTP/2 stream may decode, are bounded by
bastion's own header limit (+ 8 KiB), so a few KiB of HPACK references to one indexed
field (an "HPACK bomb") cannot make the worker decode megabytes a stream (granian's
defaults: ~410 KiB and 16 MiB)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from bastion._server import HEAD_SLACK
from tests._deploy import make_deployment
from tests._procs import BASTION, bastion_serve
from tests._services import free_port

BASE = [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1")]


class H2C:
    """A plaintext HTTP/2 (prior knowledge) client connection, one request at a time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.settings: dict[int, int] = {}

    def request(self, path: str, extra: list[tuple[str, str]]) -> str:
        """The response's :status, or the name of the event that ended the stream."""
        stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream, [*BASE, (":path", path), *extra], end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data = self.sock.recv(65536)
            if not data:
                return "closed"
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    self.settings.update(
                        {k: v.new_value for k, v in event.changed_settings.items()}
                    )
                elif isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                    return dict(event.headers)[":status"]
                elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
                    return "reset"
                elif isinstance(event, h2.events.ConnectionTerminated):
                    return "terminated"
            self.sock.sendall(self.conn.data_to_send())
        raise TimeoutError("no answer in 10 s")

    def close(self) -> None:
        self.sock.close()


def _deployment(tmp_path: Path, port: int, *, http2: bool = True) -> Path:
    d = asyncio.run(
        make_deployment(
            tmp_path / "d",
            "http://127.0.0.1:9",
            listen={"host": "127.0.0.1", "port": port, "http2": http2},
            limits={"max_header_bytes": 16384},
        )
    )
    return d.config_file


def test_http1_heads_past_the_limit_are_refused_by_the_server_itself(tmp_path: Path) -> None:
    port = free_port()
    with bastion_serve(_deployment(tmp_path, port), port):
        for size, refused_by_bastion in ((20_000, True), (100_000, False)):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                head = b"GET /api/orders HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * size
                sock.sendall(head + b"\r\n\r\n")
                answer = sock.recv(4096).decode("latin-1").lower()
            assert answer.startswith("http/1.1 431")
            # Under 16 KiB + 8 KiB the head reaches bastion's guard (problem+json); past
            # it granian refuses before buffering more (granian's default: ~410 KiB).
            assert ("application/problem+json" in answer) is refused_by_bastion


def test_http2_header_lists_are_bounded_by_bastions_header_limit(tmp_path: Path) -> None:
    port = free_port()
    with bastion_serve(_deployment(tmp_path, port), port):
        client = H2C(port)
        try:
            assert client.request("/healthz", []) == "200"
            limit = client.settings[h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE]
            assert limit == 16384 + HEAD_SLACK  # granian's default would be 16 MiB
            # ~600 KiB decoded from ~3 KiB sent: one field indexed once, then referenced.
            bomb = [("x-b", "a" * 3000)] * 200
            assert client.request("/api/orders", bomb) in ("431", "reset", "terminated")
        finally:
            client.close()
        again = H2C(port)  # the server is still there and serving
        try:
            assert again.request("/healthz", []) == "200"
        finally:
            again.close()


def test_http2_is_off_unless_the_config_turns_it_on(tmp_path: Path) -> None:
    # HTTP/1.1 only by default (listen.http2: false): granian's protocol detection would
    # hold a connection that sends nothing for good (tests/interop/test_serve_servers.py).
    port = free_port()
    with bastion_serve(_deployment(tmp_path, port, http2=False), port):
        client = H2C(port)
        try:
            assert client.request("/healthz", []) in ("closed", "terminated")
        finally:
            client.close()


def test_uvicorn_refuses_http2(tmp_path: Path) -> None:
    port = free_port()
    cmd = [*BASTION, "serve", "--config", str(_deployment(tmp_path, port)), "--server", "uvicorn"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "listen.http2 needs granian" in " ".join(done.stderr.split())


def test_http2_rapid_reset_is_cut_off(tmp_path: Path) -> None:
    # CVE-2023-44487: streams opened and at once cancelled cost the server work the
    # client never waits for. granian (hyper) ends such a connection after a few hundred
    # resets; the worker keeps serving everyone else.
    port = free_port()
    with bastion_serve(_deployment(tmp_path, port), port):
        client = H2C(port)
        sent, cut = 0, False
        try:
            for _ in range(20_000):
                stream = client.conn.get_next_available_stream_id()
                client.conn.send_headers(stream, [*BASE, (":path", "/healthz")], end_stream=True)
                client.conn.reset_stream(stream)
                sent += 1
                if sent % 100 == 0:
                    client.sock.sendall(client.conn.data_to_send())
        except (ConnectionError, h2.exceptions.ProtocolError):
            cut = True
        finally:
            client.close()
        assert cut
        assert sent < 5_000
        again = H2C(port)
        try:
            assert again.request("/healthz", []) == "200"
        finally:
            again.close()
