"""An ASGI app served by a real uvicorn in the test's own event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from tests._polling import eventually
from tests._services import free_port


@asynccontextmanager
async def serving(app: Any, scheme: str = "http") -> AsyncIterator[str]:
    """``scheme://127.0.0.1:PORT`` while uvicorn serves ``app`` (wsproto for WebSockets;
    its proxy-header rewriting off, as docs/embedding.md asks)."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws="wsproto", lifespan="off", proxy_headers=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    assert await eventually(lambda: server.started, seconds=10)
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
