"""A raw HTTP/1.1 client: the exact bytes a test writes reach the front door (no client
library normalises the path, merges headers or fixes the framing), sent from a loopback
address that is not one of bastion's trusted proxies (127.0.0.2)."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

CLIENT_ADDRESS = "127.0.0.2"  # loopback, but not in forwarded.trusted_proxies (127.0.0.1)


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def reached_upstream(self) -> bool:
        """Whether this is the echo upstream's answer (the request got through)."""
        if self.status != 200 or not self.body.startswith(b"{"):
            return False
        return bool(json.loads(self.body).get("upstream") == "echo")


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout, (CLIENT_ADDRESS, 0))
    sock.settimeout(timeout)
    return sock


def build(method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    names = {name.lower() for name, _ in headers}
    lines = [f"{method} {target} HTTP/1.1"]
    if "host" not in names:
        lines.append("Host: 127.0.0.1")
    lines += [f"{name}: {value}" for name, value in headers]
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def send(port: int, raw: bytes, timeout: float = 10.0) -> Reply:
    """Write ``raw`` on a new connection and read one final answer (skipping 1xx)."""
    with connect(port, timeout) as sock:
        sock.sendall(raw)
        return read_reply(sock)


def request(
    port: int,
    method: str,
    target: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> Reply:
    return send(port, build(method, target, headers or [], body))


def read_reply(sock: socket.socket) -> Reply:
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed after {buffer!r}")
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        if 100 <= status < 200:
            continue  # an interim answer (100 Continue)
        headers = [
            (n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines[1:])
        ]
        return Reply(status, headers, _body(sock, buffer, {n.lower(): v for n, v in headers}))


def _body(sock: socket.socket, buffer: bytes, headers: dict[str, str]) -> bytes:
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(buffer) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
        return buffer[:length]
    if "chunked" in headers.get("transfer-encoding", ""):
        return _dechunk(sock, buffer)
    while chunk := sock.recv(65536):
        buffer += chunk
    return buffer


def _dechunk(sock: socket.socket, buffer: bytes) -> bytes:
    body = b""
    while True:
        while b"\r\n" not in buffer:
            buffer += sock.recv(65536)
        size_line, _, buffer = buffer.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return body
        while len(buffer) < size + 2:
            buffer += sock.recv(65536)
        body, buffer = body + buffer[:size], buffer[size + 2 :]
