"""Where the API speaks WebSocket: found once per scan, shared by the checks on it.

Candidates are the spec's ``GET`` operations that declare a ``101`` answer or whose path
names a socket (``/ws``, ``/live``, ``/events``…), and a few common paths. Each is opened
once as the first identity, as a client that is not a browser (no ``Origin``, which
servers that check origins let through); the ones that switch to WebSocket are the
sockets the checks probe.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from bastion.scan._context import ScanContext
from bastion.scan._identity import Identity
from bastion.scan._openapi import Operation
from bastion.scan._target import Exchange
from bastion.scan._websocket import CLOSE, first_words, handshake

_SOCKET_PATH = re.compile(
    r"(?:^|/)(?:wss?|websockets?|sockets?|live|stream(?:ing)?|events|realtime|"
    r"subscriptions?|notifications|updates|feed)(?:/|$)",
    re.IGNORECASE,
)
COMMON_PATHS = ("/ws", "/websocket", "/socket", "/live", "/events", "/stream")
MAX_CANDIDATES = 12
LISTEN = 1.0  # seconds a probe waits for what the server says first
EVIL = "https://evil.bastion-scan.invalid"  # only ever sent as a header value


@dataclass(frozen=True)
class Socket:
    path: str
    op: Operation | None  # the spec's operation, when the path came from it
    opened: Exchange  # the handshake that opened it (the first identity, no Origin)


async def sockets(ctx: ScanContext) -> list[Socket]:
    """The target's WebSockets, found by the first check that asks."""
    lock: asyncio.Lock = ctx.state.setdefault("websockets_lock", asyncio.Lock())
    async with lock:
        if "websockets" not in ctx.state:
            ctx.state["websockets"] = await _find(ctx)
    found: list[Socket] = ctx.state["websockets"]
    return found


async def _find(ctx: ScanContext) -> list[Socket]:
    ident = next(iter(ctx.users or ctx.identities), None)
    profile = (await ctx.profiles()).get(ident.name) if ident is not None else None
    candidates: dict[str, Operation | None] = {}
    for op in ctx.spec.operations:
        if op.method == "GET" and (op.websocket or _SOCKET_PATH.search(op.path)):
            path = ctx.sample_path(op, profile)
            if path is not None:
                candidates.setdefault(path, op)
    for path in COMMON_PATHS:
        candidates.setdefault(path, None)
    found = []
    for path, spec_op in list(candidates.items())[:MAX_CANDIDATES]:
        ex = await open_socket(ctx, path, ident, None)
        if ex is not None:
            found.append(Socket(path, spec_op, ex))
    return found


async def open_socket(
    ctx: ScanContext, path: str, identity: Identity | None, origin: str | None
) -> Exchange | None:
    """A handshake as ``identity`` from a page of ``origin``: the exchange when the
    target switched to WebSocket and did not close at once (what it said first is in
    ``body``), else None."""
    shake = handshake(origin)
    ex = await ctx.send("GET", path, identity=identity, headers=shake.headers, listen=LISTEN)
    if ex is None or ex.status != 101:
        return None
    if ex.headers.get("sec-websocket-accept") != shake.accept:
        return None  # not a WebSocket server's answer
    said = first_words(ex.body)
    return None if said is not None and said.opcode == CLOSE else ex  # accepted, then refused


def spoke(ex: Exchange) -> bool:
    """Whether the server sent a message (not a close) on its own."""
    said = first_words(ex.body)
    return said is not None and said.opcode != CLOSE
