"""A WSGI app on Python's own wsgiref server, as upstream: it answers with the environ's
``HTTP_*`` keys exactly as wsgiref built them (``X_Bastion_Roles`` and
``X-Bastion-Roles`` both become ``HTTP_X_BASTION_ROLES``, their values joined by ",").

Run: ``python -m tests.adversarial.wsgi_upstream --port N --log FILE``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server


def app(log: Path) -> Callable[..., Iterable[bytes]]:
    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        record = {
            "upstream": "wsgi",
            "method": environ["REQUEST_METHOD"],
            "path": environ["PATH_INFO"],
            "environ": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
        }
        with log.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        body = json.dumps(record).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    return wsgi


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    make_server("127.0.0.1", args.port, app(args.log), handler_class=_Quiet).serve_forever()
