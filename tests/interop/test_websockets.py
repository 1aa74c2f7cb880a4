"""WebSockets through the proxy front door, under each real server, to a real aiohttp
WebSocket upstream (tests/interop/ws_upstream.py): the handshake is decided like any
request (401/403 with bastion's problem body before any upgrade), identity headers are
bastion's alone, messages flow both ways, close codes cross, and the credential is
watched while the connection is open — expiry, revocation and idleness close it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests._deploy import Deployment, make_deployment, revoke_keys
from tests._polling import eventually
from tests._procs import bastion_serve, running
from tests._services import free_port
from tests._ws import assert_refused

UPSTREAM = Path(__file__).with_name("ws_upstream.py")


@contextmanager
def ws_upstream(folder: Path) -> Iterator[int]:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with running([sys.executable, str(UPSTREAM), str(port)], port, cwd=folder):
        yield port


@contextmanager
def serving(
    tmp_path: Path, port: int, server: str = "granian", **overrides: Any
) -> Iterator[Deployment]:
    """The WebSocket upstream, and ``bastion serve`` on ``port`` proxying to it."""
    with ws_upstream(tmp_path / "up") as up:
        d = deployment(tmp_path, up, port, **overrides)
        with bastion_serve(d.config_file, port, "--server", server):
            yield d


def deployment(tmp_path: Path, up: int, port: int, **overrides: Any) -> Deployment:
    upstream = f"http://127.0.0.1:{up}"
    routes = [
        {
            "name": "ws",
            "path_prefix": "/ws",
            "upstream": upstream,
            "websocket": True,
            "auth": ["jwt", "api_key"],
        },
        {
            "name": "redirect",
            "path_prefix": "/redirect",
            "upstream": upstream,
            "websocket": True,
            "auth": ["api_key"],
        },
        {
            "name": "refuse",
            "path_prefix": "/refuse",
            "upstream": upstream,
            "websocket": True,
            "auth": ["api_key"],
        },
        {"name": "api", "path_prefix": "/api", "upstream": upstream, "auth": ["api_key"]},
    ]
    listen = {"host": "127.0.0.1", "port": port}
    return asyncio.run(
        make_deployment(tmp_path / "d", upstream, listen=listen, routes=routes, **overrides)
    )


def closes(folder: Path) -> list[int]:
    log = folder / "closes.log"
    # "None": the connection ended without a close frame (1006, abnormal closure).
    lines = log.read_text().split() if log.exists() else []
    return [1006 if line == "None" else int(line) for line in lines]


async def wait_closes(folder: Path, count: int) -> list[int]:
    await eventually(lambda: len(closes(folder)) >= count)
    return closes(folder)


async def open_gauge(client: aiohttp.ClientSession, port: int) -> float:
    async with client.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    line = next(x for x in text.splitlines() if x.startswith("bastion_websocket_connections "))
    return float(line.split()[1])


def audit_lines(d: Deployment) -> list[dict[str, Any]]:
    return [json.loads(line) for line in d.audit_log.read_text().splitlines() if line]


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_websocket_handshake_decided_and_messages_relayed(tmp_path: Path, server: str) -> None:
    port = free_port()
    with serving(tmp_path, port, server) as d:
        base = f"ws://127.0.0.1:{port}"
        key = {"X-API-Key": d.api_key}

        async def scenario() -> None:
            async with aiohttp.ClientSession() as client:
                spoofed = {**key, "X-Bastion-Subject": "mallory", "Authorization": "x"}
                async with client.ws_connect(
                    base + "/ws/room?x=1", headers=spoofed, protocols=("chat.v1", "chat.v0")
                ) as ws:
                    assert ws.protocol == "chat.v1"  # the upstream's choice, relayed
                    await ws.send_str("hello")
                    assert (await ws.receive_str(timeout=5)) == "hello"
                    await ws.send_bytes(b"\x00\xff")
                    assert (await ws.receive_bytes(timeout=5)) == b"\x00\xff"
                    await ws.send_str("whoami")
                    seen = json.loads(await ws.receive_str(timeout=5))
                    assert seen["path"] == "/ws/room?x=1"
                    headers = seen["headers"]
                    assert headers["x-bastion-subject"] == "alice"  # not the client's
                    assert headers["x-bastion-credential"] == "api_key"
                    assert "x-api-key" not in headers
                    assert "authorization" not in headers
                    assert headers["x-forwarded-for"] == "127.0.0.1"
                    assert await open_gauge(client, port) == 1.0
                    await ws.close(code=4002)
                assert await wait_closes(tmp_path / "up", 1) == [4002]  # client's code crossed
                assert await open_gauge(client, port) == 0.0

                async with client.ws_connect(base + "/ws/a", headers=key) as ws:
                    await ws.send_str("close-me")
                    message = await ws.receive(timeout=5)
                    assert message.type is aiohttp.WSMsgType.CLOSE
                    assert message.data == 4001  # the upstream's code crossed

                # Refused handshakes: bastion's status and problem body, never an upgrade;
                # a route that did not opt in refuses it; the upstream's refusal and
                # redirect are bad gateways (a redirect is never followed).
                await assert_refused(
                    client,
                    base,
                    [
                        ("/ws/a", {}, 401),
                        ("/ws/a", {"X-API-Key": "bst_nope"}, 401),
                        ("/api/orders", key, 403),
                        ("/refuse", key, 502),
                        ("/redirect", key, 502),
                    ],
                )

        asyncio.run(scenario())
    lines = audit_lines(d)
    refused_lines = [line for line in lines if line.get("outcome") != "allow"]
    reasons = {line.get("reason") for line in refused_lines}
    assert "websocket_not_allowed" in reasons
    assert d.api_key not in d.audit_log.read_text()


def test_websocket_limits_size_and_idleness(tmp_path: Path) -> None:
    port = free_port()
    settings = {"max_message_bytes": 1024 * 1024, "idle_seconds": 1.5}
    with serving(tmp_path, port, websockets=settings) as d:
        base = f"ws://127.0.0.1:{port}"
        key = {"X-API-Key": d.api_key}

        async def scenario() -> None:
            async with aiohttp.ClientSession() as client:
                async with client.ws_connect(base + "/ws/a", headers=key) as ws:
                    await ws.send_bytes(b"y" * (1024 * 1024 + 1))  # one byte too many
                    message = await ws.receive(timeout=5)
                    assert message.type is aiohttp.WSMsgType.CLOSE
                    assert message.data == 1009
                async with client.ws_connect(base + "/ws/a", headers=key) as ws:
                    await ws.send_str("big")  # 2 MiB from the upstream: too big as well
                    message = await ws.receive(timeout=5)
                    assert message.type is aiohttp.WSMsgType.CLOSE
                    assert message.data == 1009
                async with client.ws_connect(base + "/ws/a", headers=key) as ws:
                    started = time.monotonic()
                    await ws.send_str("ping")
                    assert (await ws.receive_str(timeout=5)) == "ping"
                    message = await ws.receive(timeout=10)  # then silence
                    assert message.type is aiohttp.WSMsgType.CLOSE
                    assert message.data == 1001
                    assert 1.4 < time.monotonic() - started < 6

        asyncio.run(scenario())
        # Every upstream connection was closed too, none left open.
        assert len(asyncio.run(wait_closes(tmp_path / "up", 3))) == 3


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_an_open_websocket_closes_when_its_credential_expires_or_is_revoked(
    tmp_path: Path, server: str
) -> None:
    port = free_port()
    settings = {"recheck_seconds": 1}
    with serving(tmp_path, port, server, websockets=settings, api_keys={"cache_seconds": 0}) as d:
        base = f"ws://127.0.0.1:{port}"

        async def scenario() -> None:
            async with aiohttp.ClientSession() as client:
                token = d.jwt(exp=int(time.time()) + 3)
                bearer = {"Authorization": f"Bearer {token}"}
                async with client.ws_connect(base + "/ws/a", headers=bearer) as ws:
                    started = time.monotonic()
                    # Traffic does not keep it open past expiry.
                    while time.monotonic() - started < 8:
                        with contextlib.suppress(aiohttp.ClientConnectionResetError):
                            await ws.send_str("tick")  # the close may be on its way
                        message = await ws.receive(timeout=5)
                        if message.type is not aiohttp.WSMsgType.TEXT:
                            break
                        await asyncio.sleep(0.2)
                    assert message.type is aiohttp.WSMsgType.CLOSE
                    assert message.data == 1008
                    assert message.extra == "invalid_token"
                    assert time.monotonic() - started < 6

                key = {"X-API-Key": d.api_key}
                async with client.ws_connect(base + "/ws/a", headers=key) as ws:
                    await ws.send_str("still here")
                    assert (await ws.receive_str(timeout=5)) == "still here"
                    await revoke_keys(d)
                    message = await ws.receive(timeout=10)
                    assert message.type is aiohttp.WSMsgType.CLOSE
                    assert message.data == 1008

        asyncio.run(scenario())
    refused = [line for line in audit_lines(d) if line.get("outcome") != "allow"]
    reasons = [line.get("reason") for line in refused]
    assert "token_expired" in reasons, reasons
    assert any(r and "revoked" in r for r in reasons), reasons


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_a_client_that_stops_reading_is_cut_not_buffered_for(tmp_path: Path, server: str) -> None:
    # The upstream sends 256 MiB as fast as it can; the client reads nothing for 4 s. The
    # relay waits limits.send_idle_seconds for the client to take the next message, then
    # closes both sides (1001): what waits in buffers is a few MiB, not the 256.
    port = free_port()
    with serving(tmp_path, port, server, limits={"send_idle_seconds": 1.5}) as d:
        base = f"ws://127.0.0.1:{port}"

        async def scenario() -> None:
            async with aiohttp.ClientSession() as client:
                headers = {"X-API-Key": d.api_key}
                async with client.ws_connect(base + "/ws/a", headers=headers) as ws:
                    await ws.send_str("flood")
                    await asyncio.sleep(4)
                    received = 0
                    while (message := await ws.receive(timeout=10)).type is (
                        aiohttp.WSMsgType.BINARY
                    ):
                        received += 1
                    assert message.type is aiohttp.WSMsgType.CLOSE
                    assert (message.data, message.extra) == (1001, "send_timeout")
                    assert received < 200  # of 1,024 messages of 256 KiB
                assert await wait_closes(tmp_path / "up", 1) == [1001]

        asyncio.run(scenario())


def test_open_websockets_are_bounded_per_client_and_per_worker(tmp_path: Path) -> None:
    # Each open WebSocket holds two file descriptors and an upstream connection; the
    # handshake rate limit alone would let one client pile them up (nginx's limit_conn).
    port = free_port()
    settings = {"max_per_client": 2, "max_connections": 3}
    with serving(tmp_path, port, websockets=settings) as d:
        url = f"ws://127.0.0.1:{port}/ws/a"
        key = {"X-API-Key": d.api_key}

        async def scenario() -> None:
            async with aiohttp.ClientSession() as client:
                first = await client.ws_connect(url, headers=key)
                second = await client.ws_connect(url, headers=key)
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await client.ws_connect(url, headers=key)
                assert refused.value.status == 429
                assert refused.value.headers is not None
                assert refused.value.headers["Retry-After"] == "5"
                # Another client (an address bastion's trusted proxy speaks for) still
                # gets one, until the worker holds max_connections.
                other = {**key, "X-Forwarded-For": "198.51.100.7"}
                third = await client.ws_connect(url, headers=other)
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await client.ws_connect(url, headers={**key, "X-Forwarded-For": "198.51.100.8"})
                assert refused.value.status == 503
                await first.close()  # a place freed is a place taken again
                assert await eventually(lambda: len(closes(tmp_path / "up")) == 1)
                for _ in range(50):  # bastion gives the place back right after
                    with contextlib.suppress(aiohttp.WSServerHandshakeError):
                        fourth = await client.ws_connect(url, headers=key)
                        break
                    await asyncio.sleep(0.05)
                else:
                    pytest.fail("the place the closed connection held was not given back")
                await fourth.send_str("hello")
                assert await fourth.receive_str(timeout=5) == "hello"
                for ws in (second, third, fourth):
                    await ws.close()

        asyncio.run(scenario())


def test_a_browser_token_offered_as_a_subprotocol(tmp_path: Path) -> None:
    # Browsers cannot set Authorization on a WebSocket: a page offers its token as the
    # subprotocol "bastion.bearer.<token>" beside "bastion". Neither reaches the upstream;
    # the answer names the upstream's choice, or "bastion" when it made none.
    port = free_port()
    with serving(tmp_path, port) as d:
        url = f"ws://127.0.0.1:{port}/ws/a"
        token = d.jwt()

        async def scenario() -> None:
            async with aiohttp.ClientSession() as client:
                offered = ("bastion", f"bastion.bearer.{token}", "chat.v1")
                async with client.ws_connect(url, protocols=offered) as ws:
                    assert ws.protocol == "chat.v1"
                    await ws.send_str("whoami")
                    seen = json.loads(await ws.receive_str(timeout=5))["headers"]
                    assert seen["x-bastion-subject"] == "alice"
                    assert seen["x-bastion-credential"] == "jwt"
                    assert seen["sec-websocket-protocol"] == "chat.v1"  # nothing of bastion's
                    assert "authorization" not in seen
                offered = ("bastion", f"bastion.bearer.{token}")
                async with client.ws_connect(url, protocols=offered) as ws:
                    assert ws.protocol == "bastion"
                    await ws.send_str("hello")
                    assert await ws.receive_str(timeout=5) == "hello"
                for bad, status in (
                    (f"bastion.bearer.{token}x", 401),  # a bad signature
                    ("bastion.bearer.a.b", 401),  # not a JWT
                    ("bastion.bearer.", 400),  # no token at all: a malformed credential
                ):
                    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                        await client.ws_connect(url, protocols=("bastion", bad))
                    assert refused.value.status == status, bad

        asyncio.run(scenario())
    assert token not in d.audit_log.read_text()
