"""WebSocket client steps shared by the tests of each front door."""

from __future__ import annotations

import aiohttp
import pytest


async def assert_refused(
    client: aiohttp.ClientSession, base: str, cases: list[tuple[str, dict[str, str], int]]
) -> None:
    """Each ``(path, headers, status)`` handshake is refused with that HTTP status, never
    upgraded; a 401 carries a challenge."""
    for path, headers, status in cases:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(base + path, headers=headers)
        assert refused.value.status == status, path
        if status == 401:
            assert refused.value.headers is not None
            assert "WWW-Authenticate" in refused.value.headers, path


async def assert_relayed(client: aiohttp.ClientSession, url: str, api_key: str) -> None:
    """A handshake with ``api_key`` (and a spoofed subject) reaches bastion's demo
    upstream: messages echo both ways and the upstream saw bastion's identity headers,
    for route ``live``, and neither the key nor the client's own subject."""
    headers = {"X-API-Key": api_key, "X-Bastion-Subject": "mallory"}
    async with client.ws_connect(url, headers=headers) as ws:
        await ws.send_str("hello")
        assert await ws.receive_str(timeout=5) == "hello"
        await ws.send_bytes(b"\x01\x02")
        assert await ws.receive_bytes(timeout=5) == b"\x01\x02"
        await ws.send_str("whoami")
        seen = (await ws.receive_json(timeout=5))["headers"]
    assert seen["x-bastion-subject"] == "alice"
    assert seen["x-bastion-route"] == "live"
    assert "x-api-key" not in seen


async def check_forward_auth_websockets(
    base: str, api_key: str, token: str, basic: str | None = None
) -> None:
    """Through a proxy asking bastion (forward auth) at ``base``: route ``live`` accepts
    WebSockets, route ``api`` does not; a browser's ``token`` offered as a subprotocol
    is its credential. Given ``basic`` (an Authorization value), a browser's Basic
    handshake opens ``live`` from a page of ``base`` itself (port included, as the
    proxy forwards the host) and from no other origin."""
    ws_base = base.replace("http://", "ws://")
    async with aiohttp.ClientSession() as client:
        if basic is not None:
            own = {"Authorization": basic, "Origin": base}
            async with client.ws_connect(ws_base + "/live/feed", headers=own) as ws:
                await ws.send_str("whoami")
                seen = (await ws.receive_json(timeout=5))["headers"]
                assert seen["x-bastion-credential"] == "basic"
            foreign = {"Authorization": basic, "Origin": "https://evil.example"}
            await assert_refused(client, ws_base, [("/live/feed", foreign, 403)])
        await assert_relayed(client, ws_base + "/live/feed", api_key)
        offered = ("bastion", f"bastion.bearer.{token}")
        async with client.ws_connect(ws_base + "/live/feed", protocols=offered) as ws:
            assert ws.protocol == "bastion"  # the demo upstream's answer
            await ws.send_str("whoami")
            seen = (await ws.receive_json(timeout=5))["headers"]
            assert seen["x-bastion-credential"] == "jwt"
        await assert_refused(
            client,
            ws_base,
            [
                ("/live/feed", {}, 401),
                ("/live/feed", {"X-API-Key": "bst_wrong"}, 401),
                ("/api/feed", {"X-API-Key": api_key}, 403),  # not a websocket route
            ],
        )
