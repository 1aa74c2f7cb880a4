"""A WebSocket upstream for the proxy tests (aiohttp's server, a real process).

``/ws/...``: echoes text and binary messages; ``whoami`` answers the handshake's headers
as JSON; ``close-me`` closes with 4001; ``big`` sends a 2 MiB message, ``flood`` 1,024
of 256 KiB. Subprotocol ``chat.v1`` is chosen when offered. Each connection's close
code (what the peer sent) is appended to ``closes.log`` in the working folder.
``/redirect`` answers the handshake with a redirect to ``/ws/elsewhere`` and
``/refuse`` with a 403.

    python ws_upstream.py PORT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aiohttp import WSMsgType, web

CLOSES = Path("closes.log")


async def socket(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=("chat.v1",), max_msg_size=8 * 1024 * 1024)
    await ws.prepare(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                if message.data == "whoami":
                    await ws.send_str(json.dumps({"path": request.path_qs, "headers": headers}))
                elif message.data == "close-me":
                    await ws.close(code=4001, message=b"bye")
                elif message.data == "big":
                    await ws.send_bytes(b"x" * (2 * 1024 * 1024))
                elif message.data == "flood":  # 256 MiB, as fast as the peer takes them
                    for _ in range(1024):
                        await ws.send_bytes(b"f" * (256 * 1024))
                else:
                    await ws.send_str(message.data)
            elif message.type is WSMsgType.BINARY:
                await ws.send_bytes(message.data)
    finally:
        with CLOSES.open("a", encoding="utf-8") as log:
            log.write(f"{ws.close_code}\n")
    return ws


async def redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/ws/elsewhere")


async def refuse(request: web.Request) -> web.StreamResponse:
    raise web.HTTPForbidden()


def main() -> None:
    app = web.Application()
    app.router.add_get("/ws/{tail:.*}", socket)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/refuse", refuse)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)


if __name__ == "__main__":
    main()
