"""An upstream that answers every request with exactly what reached it: the method, the
request target and every header line as sent (names in their case and order, repeats
kept), and records each request in a JSON-lines log. Written on raw sockets, with no
framework to normalise anything away, so the adversarial tests see what an upstream sees.

It never answers ``Expect: 100-continue``: it waits for the body, as a server may (RFC
9110 §10.1.1 lets it). ``GET /__stats`` (sent to it directly) reports the connections it
holds open.
Run: ``python -m tests.adversarial.echo_upstream --port N --log FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

MAX_HEAD = 64 * 1024


class Echo:
    def __init__(self, log: Path) -> None:
        self.log = log
        self.open = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = [line.split(":", 1) for line in lines[1:] if line]
        headers = [[name, value.strip()] for name, value in headers]
        lowered = {name.lower(): value for name, value in headers}
        body = await self._body(reader, lowered)
        record = {
            "upstream": "echo",
            "method": method,
            "target": target,
            "headers": headers,
            "body": body.decode("latin-1"),
        }
        if target == "/__stats":
            record = {"open": self.open}
        else:
            with self.log.open("a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
        payload = json.dumps(record).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        return lowered.get("connection", "").lower() != "close"

    @staticmethod
    async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass  # trailer fields
                    return body
                body += (await reader.readexactly(size + 2))[:-2]
        length = headers.get("content-length", "0")
        return await reader.readexactly(int(length)) if length.isdigit() else b""


async def main(port: int, log: Path) -> None:
    echo = Echo(log)
    server = await asyncio.start_server(echo.serve, "127.0.0.1", port, limit=MAX_HEAD)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.log))
