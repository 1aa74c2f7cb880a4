"""A small upstream API for the quickstart and the tests: it echoes what reached it,
so you can see the identity headers bastion adds and the credentials it strips. A
WebSocket handshake on any path opens an echoing socket."""

from __future__ import annotations

import argparse

from aiohttp import WSMsgType, web

_SHOWN_PREFIXES = ("x-bastion-", "x-forwarded-", "authorization", "x-api-key", "x-request-id")


MAX_FILL = 16 * 1024 * 1024


def _seen(request: web.Request) -> dict[str, str]:
    headers = {k.lower(): v for k, v in request.headers.items()}
    seen = {k: v for k, v in headers.items() if k.startswith(_SHOWN_PREFIXES)}
    if "x-bastion-assertion" in seen:
        seen["x-bastion-assertion"] = seen["x-bastion-assertion"][:24] + "..."
    return seen


async def _socket(request: web.Request) -> web.StreamResponse:
    """A WebSocket that echoes each message; ``whoami`` answers the handshake's headers."""
    ws = web.WebSocketResponse(protocols=("bastion",))  # what a browser's token comes with
    await ws.prepare(request)
    async for message in ws:
        if message.type is WSMsgType.TEXT and message.data == "whoami":
            await ws.send_json(
                {"upstream": "demo", "path": request.path, "headers": _seen(request)}
            )
        elif message.type is WSMsgType.TEXT:
            await ws.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await ws.send_bytes(message.data)
    return ws


async def _echo(request: web.Request) -> web.StreamResponse:
    if request.method == "GET" and "websocket" in request.headers.get("Upgrade", "").lower():
        return await _socket(request)
    body = await request.read()
    fill = request.query.get("fill", "")
    if fill.isdigit() and int(fill) <= MAX_FILL:
        # ?fill=N answers N bytes, streamed in chunks: for testing large responses.
        response = web.StreamResponse(headers={"content-type": "application/octet-stream"})
        response.content_length = int(fill)
        await response.prepare(request)
        left = int(fill)
        while left:
            step = min(left, 256 * 1024)
            await response.write(b"x" * step)
            left -= step
        await response.write_eof()
        return response
    return web.json_response(
        {
            "upstream": "demo",
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "body_bytes": len(body),
            "headers": _seen(request),
        }
    )


def upstream_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", _echo)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="bastion's demo upstream (echo API)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    web.run_app(upstream_app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
