"""An app protected by bastion's ASGI middleware, served by uvicorn, that answers with
what reached it (as tests/adversarial/echo_upstream.py does for the other front doors).

Run: ``python -m tests.adversarial.middleware_app --config bastion.yaml --port N --log F``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import uvicorn

from bastion.gateway.middleware import BastionMiddleware


def echo_app(log: Path) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        record = {
            "upstream": "echo",
            "method": scope["method"],
            "target": target,
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body": body.decode("latin-1"),
        }
        with log.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        payload = json.dumps(record).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    app = BastionMiddleware(echo_app(args.log), config=args.config)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        lifespan="off",
        proxy_headers=False,  # as docs/embedding.md says: bastion's trusted_proxies decide
    )
