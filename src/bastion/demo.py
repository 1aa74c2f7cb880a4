"""A small upstream API for the quickstart and the tests: it echoes what reached it,
so you can see the identity headers bastion adds and the credentials it strips."""

from __future__ import annotations

import argparse

from aiohttp import web

_SHOWN_PREFIXES = ("x-bastion-", "x-forwarded-", "authorization", "x-api-key", "x-request-id")


async def _echo(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    headers = {k.lower(): v for k, v in request.headers.items()}
    seen = {k: v for k, v in headers.items() if k.startswith(_SHOWN_PREFIXES)}
    if "x-bastion-assertion" in seen:
        seen["x-bastion-assertion"] = seen["x-bastion-assertion"][:24] + "..."
    return web.json_response(
        {
            "upstream": "demo",
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "body_bytes": len(body),
            "headers": seen,
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
