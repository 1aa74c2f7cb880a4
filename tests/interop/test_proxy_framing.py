"""Request framing through the proxy front door, under each real server: a request with
both Content-Length and Transfer-Encoding never goes upstream with both (whichever
framing the upstream believed, the other could smuggle a second request past bastion):
bastion refuses it when the server hands it both (uvicorn's h11), granian frames it by
its chunks alone; every body goes upstream with exactly one framing. The upstream is a
raw socket that records the bytes it receives, so the framing sent is what is checked."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests._deploy import Deployment, make_deployment
from tests._procs import bastion_serve, demo_upstream
from tests._services import free_port

REPLY = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"


@contextmanager
def recording_upstream(port: int, reply: bytes = REPLY, idle: float = 0.5) -> Iterator[list[bytes]]:
    """Each connection's bytes (read until the peer stops for ``idle`` s), answered ``reply``."""
    received: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", port))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            data = b""
            conn.settimeout(idle)
            try:
                while chunk := conn.recv(65536):
                    data += chunk
                    if b"\r\n\r\n" in data and data.endswith((b"0\r\n\r\n", b"hello")):
                        break
            except TimeoutError:
                pass
            received.append(data)
            conn.sendall(reply)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def send(port: int, head: bytes, body: bytes) -> bytes:
    """The first answer on a connection: its head and as much body as came within 1 s."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b"\r\n" + body)
        answer = sock.recv(65536)
        sock.settimeout(1)
        try:
            while b"\r\n\r\n" not in answer or answer.endswith(b"\r\n\r\n"):
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except TimeoutError:
            pass
        return answer


def proxying(tmp_path: Path, port: int, up: int, **overrides: object) -> Deployment:
    """A deployment on ``port`` whose routes proxy to 127.0.0.1:``up``."""
    listen = {"host": "127.0.0.1", "port": port}
    upstream = f"http://127.0.0.1:{up}"
    return asyncio.run(make_deployment(tmp_path / "d", upstream, listen=listen, **overrides))


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_proxy_refuses_two_framings_and_forwards_one(tmp_path: Path, server: str) -> None:
    port, up = free_port(), free_port()
    d = proxying(tmp_path, port, up)
    start = b"POST /api/orders HTTP/1.1\r\nHost: a\r\nX-API-Key: " + d.api_key.encode() + b"\r\n"
    chunked = b"5\r\nhello\r\n0\r\n\r\n"
    smuggled = b"GET /api/admin HTTP/1.1\r\nHost: a\r\n\r\n"
    with recording_upstream(up) as received, bastion_serve(d.config_file, port, "--server", server):
        both = start + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"
        answer = send(port, both, chunked + smuggled)
        if server == "uvicorn":  # h11 hands both headers to bastion, which refuses
            assert answer.startswith(b"HTTP/1.1 400")
            assert b"invalid_request" in answer
        else:  # granian (hyper) drops Content-Length itself and frames by chunks
            assert answer.startswith(b"HTTP/1.1 200")
        answer = send(port, start + b"Transfer-Encoding: chunked\r\n", chunked)
        assert answer.startswith(b"HTTP/1.1 200")
        answer = send(port, start + b"Content-Length: 5\r\n", b"hello")
        assert answer.startswith(b"HTTP/1.1 200")
        expected = 2 if server == "uvicorn" else 3
        deadline = time.monotonic() + 5
        while len(received) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
    assert len(received) == expected
    for raw in received:
        head, _, body = raw.partition(b"\r\n\r\n")
        names = [line.split(b":")[0].lower() for line in head.split(b"\r\n")[1:]]
        framings = names.count(b"content-length") + names.count(b"transfer-encoding")
        assert framings == 1, head
        assert b"hello" in body
        assert b"/api/admin" not in raw  # the smuggled request never reached the upstream


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
        b"HTTP/1.1 999 Odd\r\ncontent-length: 0\r\n\r\n",
    ],
)
def test_an_upstream_status_outside_final_http_is_a_502(
    tmp_path: Path, server: str, reply: bytes
) -> None:
    # A 101 the request never asked for would make a proxy in front of bastion believe
    # the connection switched protocols; relayed as is before (granian) or cut (uvicorn).
    port, up = free_port(), free_port()
    d = proxying(tmp_path, port, up)
    head = b"GET /api/orders HTTP/1.1\r\nHost: a\r\nX-API-Key: " + d.api_key.encode() + b"\r\n"
    with (
        recording_upstream(up, reply) as received,
        bastion_serve(d.config_file, port, "--server", server),
    ):
        answer = send(port, head, b"")
    assert len(received) == 1  # the request did reach the upstream
    assert answer.startswith(b"HTTP/1.1 502")
    assert b'"code":"bad_gateway"' in answer  # bastion's problem+json, not a relayed reply


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_a_stalled_or_oversized_request_body_is_the_clients_error(
    tmp_path: Path, server: str
) -> None:
    # A body that stops coming (3 of 10 bytes sent) held the upstream connection for as
    # long as the client liked; limits.body_idle_seconds bounds each wait (nginx's
    # client_body_timeout).
    port, up = free_port(), free_port()
    d = proxying(tmp_path, port, up, limits={"body_idle_seconds": 1, "max_body_bytes": 1024})
    head = b"POST /api/orders HTTP/1.1\r\nHost: a\r\nX-API-Key: " + d.api_key.encode()
    head += b"\r\nContent-Length: 10\r\n"
    with (
        recording_upstream(up, idle=8) as received,
        bastion_serve(d.config_file, port, "--server", server),
    ):
        started = time.monotonic()
        answer = send(port, head, b"hel")
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"request_timeout" in answer
        assert time.monotonic() - started < 6
        answer = send(port, head, b"say, hello")  # a body that arrives is forwarded
        assert answer.startswith(b"HTTP/1.1 200")
        # A chunked body that passes max_body_bytes on the way is a 413, not a 502.
        chunked = head.replace(b"Content-Length: 10", b"Transfer-Encoding: chunked")
        piece = b"300\r\n" + b"a" * 0x300 + b"\r\n"
        answer = send(port, chunked, piece * 2 + b"0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert any(raw.endswith(b"say, hello") for raw in received)


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_a_transfer_coding_other_than_chunked_is_refused(tmp_path: Path, server: str) -> None:
    # granian dechunked "gzip, chunked" and bastion forwarded the still-gzipped body to
    # the upstream as if plain; h11 refuses it itself.
    port, up = free_port(), free_port()
    d = proxying(tmp_path, port, up)
    head = b"POST /api/orders HTTP/1.1\r\nHost: a\r\nX-API-Key: " + d.api_key.encode() + b"\r\n"
    with (
        recording_upstream(up) as received,
        bastion_serve(d.config_file, port, "--server", server),
    ):
        for coding in (b"gzip, chunked", b"deflate,chunked"):
            answer = send(port, head + b"Transfer-Encoding: " + coding + b"\r\n", b"0\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
        answer = send(port, head + b"Transfer-Encoding: Chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200")
    assert len(received) == 1


def established_to(port: int) -> int:
    """Established TCP connections to 127.0.0.1:``port`` on this machine (/proc/net)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="counts sockets in /proc/net")
@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_a_client_that_stops_reading_does_not_hold_the_upstream(
    tmp_path: Path, server: str
) -> None:
    # Each client asks for 16 MiB and stops reading: the upstream connection (and its
    # slot in the proxy's pool, shared by every request) was held for good; now for
    # limits.send_idle_seconds (nginx's send_timeout).
    port = free_port()
    with demo_upstream() as upstream:
        up = int(upstream.rsplit(":", 1)[1])
        listen = {"host": "127.0.0.1", "port": port}
        d = asyncio.run(
            make_deployment(
                tmp_path / "d", upstream, listen=listen, limits={"send_idle_seconds": 1}
            )
        )
        ask = b"GET /api/big?fill=16777216 HTTP/1.1\r\nHost: a\r\nX-API-Key: "
        ask += d.api_key.encode() + b"\r\n\r\n"
        with bastion_serve(d.config_file, port, "--server", server):
            readers = []
            for _ in range(3):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.connect(("127.0.0.1", port))
                sock.sendall(ask)
                assert sock.recv(100).startswith(b"HTTP/1.1 200")  # then no more reading
                readers.append(sock)
            assert established_to(up) >= 1
            deadline = time.monotonic() + 15
            while established_to(up) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert established_to(up) == 0
            answer = send(port, b"GET /api/small HTTP/1.1\r\nHost: a\r\nX-API-Key: "
                          + d.api_key.encode() + b"\r\n", b"")  # fmt: skip
            assert answer.startswith(b"HTTP/1.1 200")
            for sock in readers:
                sock.close()
