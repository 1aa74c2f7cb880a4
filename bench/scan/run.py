"""Benchmark ``bastion scan``: a generated 50-operation API on loopback, two identities,
the default rate (20 requests/s) and budget. Prints elapsed time and requests sent.

    .venv/bin/python bench/scan/run.py [--rps 20] [--resources 10]

Target: a full scan finishes in under 60 s. The API is a small, well-behaved one
(authentication on every route, owners checked), so the run measures the scanner's
own cost - requests per check and pacing - not a flood of findings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.scan import ScanConfig, parse_auth, run_scan

TOKENS = {"tok-alice-7f3a9c": "alice", "tok-bob-2b8e41": "bob"}
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "RateLimit-Policy": "100;w=1",
}


def _who(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return TOKENS.get(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") else None


def _json(data: Any, status: int = 200) -> Response:
    return JSONResponse(data, status, headers=HEADERS)


def _handlers(store: dict[str, dict[int, dict[str, Any]]], name: str) -> tuple[Any, Any]:
    """The two route handlers of one resource (a list/create and an item route)."""

    async def collection(request: Request) -> Response:
        who = _who(request)
        if who is None:
            return _json({"error": "unauthenticated"}, 401)
        if request.method == "POST":
            return _json({"error": "read-only benchmark"}, 403)
        return _json([o for o in store[name].values() if o["owner"] == who])

    async def item(request: Request) -> Response:
        who = _who(request)
        if who is None:
            return _json({"error": "unauthenticated"}, 401)
        raw = request.path_params["item_id"]
        obj = store[name].get(int(raw)) if raw.isdigit() else None
        if obj is None or obj["owner"] != who:
            return _json({"error": "not found"}, 404)
        if request.method != "GET":
            return _json({"error": "read-only benchmark"}, 403)
        return _json(obj)

    return collection, item


def build(resources: int) -> tuple[Starlette, dict[str, Any]]:
    """``resources`` x 5 operations (list, create, read, update, delete) + ``GET /me``."""
    store: dict[str, dict[int, dict[str, Any]]] = {}
    paths: dict[str, Any] = {}
    routes = []

    async def me(request: Request) -> Response:
        who = _who(request)
        return _json({"username": who}) if who else _json({"error": "unauthenticated"}, 401)

    routes.append(Route("/me", me))
    paths["/me"] = {"get": {"responses": {"200": {"description": "me"}}}}
    for n in range(resources):
        name = f"res{n}"
        store[name] = {
            i: {"id": i, "owner": ("alice", "bob")[i % 2], "title": f"{name} {i}"}
            for i in range(1, 7)
        }

        collection, item = _handlers(store, name)
        routes.append(Route(f"/{name}", collection, methods=["GET", "POST"]))
        routes.append(Route(f"/{name}/{{item_id}}", item, methods=["GET", "PATCH", "DELETE"]))
        obj_schema = {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "owner": {"type": "string"},
                "title": {"type": "string"},
            },
        }
        ok = {"200": {"description": "ok", "content": {"application/json": {"schema": obj_schema}}}}
        param = [{"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer"}}]
        body = {"content": {"application/json": {"schema": obj_schema}}}
        paths[f"/{name}"] = {
            "get": {
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {
                            "application/json": {"schema": {"type": "array", "items": obj_schema}}
                        },
                    }
                }
            },
            "post": {"requestBody": body, "responses": ok},
        }
        paths[f"/{name}/{{item_id}}"] = {
            "get": {"parameters": param, "responses": ok},
            "patch": {"parameters": param, "requestBody": body, "responses": ok},
            "delete": {"parameters": param, "responses": {"204": {"description": "gone"}}},
        }
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "bench", "version": "1"},
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
    return Starlette(routes=routes), spec


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--resources", type=int, default=10, help="5 operations each")
    args = parser.parse_args()
    app, spec = build(args.resources)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="error", lifespan="off", proxy_headers=False
        )
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    operations = sum(len(v) for v in spec["paths"].values()) - 1  # without /me
    config = ScanConfig(
        base_url=f"http://127.0.0.1:{port}/",
        identities=[parse_auth(f"{name}=bearer:{tok}") for tok, name in TOKENS.items()],
        openapi_text=json.dumps(spec),
        rps=args.rps,
    )
    started = time.monotonic()
    result = asyncio.run(run_scan(config))
    elapsed = time.monotonic() - started
    server.should_exit = True
    thread.join(timeout=5)
    print(
        f"bastion scan bench: {operations} operations (+ /me), 2 identities, "
        f"{args.rps:g} req/s, {len(result.checks)} checks"
    )
    print(
        f"elapsed {elapsed:.1f} s, requests sent {result.requests_sent}, "
        f"findings {len(result.findings)}, incomplete {sorted(result.errors)}"
    )
    for f in result.findings:
        print(f"  {f.severity.label:8} {f.check}: {f.title}")
    target = 60.0
    print(f"target < {target:.0f} s: {'met' if elapsed < target else 'MISSED'}")
    return 0 if elapsed < target else 1


if __name__ == "__main__":
    raise SystemExit(main())
