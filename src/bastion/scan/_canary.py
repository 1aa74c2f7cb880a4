"""A tiny HTTP server on 127.0.0.1 that the scanner serves for out-of-band probes.

A ``jku``/``x5u`` or SSRF probe points the target here; the canary records every fetch,
so "the target fetched our URL" is evidence, not a guess. It never contacts anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Hit:
    path: str
    at: float
    peer: str


class Canary:
    """Serve registered documents on loopback and remember who asked for what."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.hits: list[Hit] = []
        self._docs: dict[str, tuple[str, bytes]] = {}
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Canary:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def publish(self, content_type: str, body: bytes, suffix: str = "") -> str:
        """Serve ``body`` at a fresh unguessable path; return its URL."""
        path = f"/{secrets.token_urlsafe(12)}{suffix}"
        self._docs[path] = (content_type, body)
        return f"http://{self.host}:{self.port}{path}"

    def fetched(self, url: str) -> bool:
        path = "/" + url.split("/", 3)[-1]
        return any(hit.path == path for hit in self.hits)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split(" ")
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else "/"
            peer = writer.get_extra_info("peername")
            self.hits.append(Hit(path, time.time(), str(peer[0]) if peer else "?"))
            ctype, body = self._docs.get(path, ("text/plain", b"not found"))
            status = "200 OK" if path in self._docs else "404 Not Found"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
