"""An audit log that cannot be written (a full disk: Linux's ``/dev/full`` answers every
write with ENOSPC) loses nothing: lines are held and written once writing works again;
past a bound the gateway denies every request (503) rather than decide unrecorded, and
``/readyz`` says so."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import orjson
import pytest

from bastion.audit import AuditLog, _log
from bastion.config import load_config
from bastion.gateway.app import GatewayApp
from tests._deploy import Deployment, make_deployment

FULL = "/dev/full"
pytestmark = pytest.mark.skipif(not os.path.exists(FULL), reason="needs Linux's /dev/full")


async def test_lines_are_held_while_the_disk_is_full_and_written_after(tmp_path: Path) -> None:
    audit = AuditLog(FULL)
    for i in range(3):
        audit.emit({"event": "security", "n": i})
    audit.flush()  # ENOSPC: no exception, nothing dropped
    assert audit.failing
    assert not audit.blocked
    audit.emit({"event": "security", "n": 3})
    # The disk has room again (the same file descriptor slot now names a real file).
    target = tmp_path / "audit.log"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    assert audit._fd is not None
    os.dup2(fd, audit._fd)
    os.close(fd)
    await asyncio.sleep(_log.FLUSH_SECONDS + 0.3)  # the retry timer
    assert not audit.failing
    lines = [orjson.loads(line) for line in target.read_bytes().splitlines()]
    assert [line["n"] for line in lines] == [0, 1, 2, 3]  # all of them, in order
    audit.close()


async def test_past_the_bound_the_log_blocks_and_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_log, "BACKLOG_MAX_BYTES", 4096)
    audit = AuditLog(FULL)
    audit.emit({"event": "security", "n": 0})
    audit.flush()
    assert audit.failing
    for i in range(1, 200):
        audit.emit({"event": "security", "n": i, "pad": "x" * 40})
    assert audit.blocked
    assert len(audit._buffer) <= 2 * 4096  # past twice the bound, new lines are dropped
    assert audit.dropped > 0
    assert audit._buffer.startswith(b'{"ts"')
    assert b'"n":0' in audit._buffer  # the first lines held are kept
    audit.close()


async def _forward(client: httpx.AsyncClient, d: Deployment) -> httpx.Response:
    headers = {"X-API-Key": d.api_key, "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/api/x"}
    return await client.get("/_bastion/auth", headers=headers)


async def test_the_gateway_denies_what_it_cannot_record(
    tmp_path: Path, upstream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_log, "BACKLOG_MAX_BYTES", 2048)
    d = await make_deployment(tmp_path / "d", upstream, audit={"path": FULL})
    app = GatewayApp(load_config(d.config_file))
    await app.startup()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    try:
        assert (await _forward(client, d)).status_code == 200  # buffered: not yet written
        await asyncio.sleep(_log.FLUSH_SECONDS + 0.3)  # the write fails: held
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["audit"] is False
        scraped = (await client.get("/metrics")).text
        (held,) = [ln for ln in scraped.splitlines() if ln.startswith("bastion_audit_held_bytes")]
        assert float(held.split()[1]) > 0
        statuses = [(await _forward(client, d)).status_code for _ in range(20)]
        assert statuses[0] == 200  # still within the bound
        assert statuses[-1] == 503  # past it: denied, never decided unrecorded
        denied = await _forward(client, d)
        assert denied.headers["x-bastion-error"] == "temporarily_unavailable"  # generic
        assert app.runtime is not None
        held = bytes(app.runtime.audit._buffer)
        assert b'"outcome":"allow"' in held  # the allowed requests' lines, kept
        assert b'"reason":"audit_unavailable"' in held  # and why the rest were denied
    finally:
        await client.aclose()
        await app.shutdown()
