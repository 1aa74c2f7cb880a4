"""Baseline 3b: a bare reverse proxy on aiohttp.web + aiohttp's ClientSession (uvloop),
no authentication — the floor for bastion's proxy front door on the same upstream.

Usage: python bench/baselines/aiohttp_proxy.py PORT UPSTREAM_URL
"""

from __future__ import annotations

import sys

import aiohttp
import uvloop
from aiohttp import web

HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length", "upgrade"}


def main() -> None:
    port, upstream = int(sys.argv[1]), sys.argv[2].rstrip("/")

    async def start(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=512, limit_per_host=256),
            auto_decompress=False,
        )

    async def stop(app: web.Application) -> None:
        await app["session"].close()

    async def forward(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        async with request.app["session"].request(
            request.method,
            upstream + request.path_qs,
            headers=headers,
            data=await request.read() or None,
            allow_redirects=False,
        ) as resp:
            body = await resp.read()
            out = {k: v for k, v in resp.headers.items() if k.lower() not in HOP}
            return web.Response(status=resp.status, headers=out, body=body)

    app = web.Application()
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_route("*", "/{tail:.*}", forward)
    web.run_app(
        app, host="127.0.0.1", port=port, print=None, access_log=None, loop=uvloop.new_event_loop()
    )


if __name__ == "__main__":
    main()
