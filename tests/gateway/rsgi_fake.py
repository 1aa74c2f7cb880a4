"""An in-process stand-in for granian's RSGI scope and protocol objects (unit tests only;
tests/interop runs the real granian)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


class FakeHeaders:
    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = [(k.lower(), v) for k, v in items]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def get(self, key: str, default: object = None) -> object:
        return next((v for k, v in self._items if k == key), default)


@dataclass
class FakeScope:
    method: str
    path: str
    headers: FakeHeaders
    query_string: str = ""
    client: str = "127.0.0.1:40000"
    server: str = "127.0.0.1:8080"
    proto: str = "http"
    http_version: str = "1.1"
    scheme: str = "http"


class FakeStream:
    def __init__(self, owner: FakeProtocol) -> None:
        self.owner = owner

    async def send_bytes(self, data: bytes) -> None:
        self.owner.body += data


@dataclass
class FakeProtocol:
    request_body: bytes = b""
    chunks_read: int = 0
    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    calls: list[str] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self) -> bytes:
        return self.request_body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.request_body), 4096):  # as the server's reads
            self.chunks_read += 1
            yield self.request_body[start : start + 4096]

    async def client_disconnect(self) -> None:
        await self.disconnected.wait()

    def _start(self, kind: str, status: int, headers: list[tuple[str, str]]) -> None:
        assert self.status is None, "a second response on one request"
        self.calls.append(kind)
        self.status, self.headers = status, list(headers)

    def response_empty(self, status: int, headers: list[tuple[str, str]]) -> None:
        self._start("empty", status, headers)

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self._start("bytes", status, headers)
        self.body = body

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> FakeStream:
        self._start("stream", status, headers)
        return FakeStream(self)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)


def scope(method: str, target: str, headers: dict[str, str], **extra: str) -> FakeScope:
    path, _, query = target.partition("?")
    return FakeScope(method, path, FakeHeaders(list(headers.items())), query, **extra)
