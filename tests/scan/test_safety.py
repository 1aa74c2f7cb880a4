"""Safe by default: one origin only, the budget and the rate hold, a dry run sends nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import ClassVar

import httpx
import pytest

from bastion.scan import (
    OriginRefused,
    ScanConfig,
    Severity,
    Target,
    TargetUnreachable,
    parse_login,
    run_scan,
)
from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp
from bastion.scan.checks import Check
from tests.scan._servers import ServerThread
from tests.scan.vulnapi import API, State, VulnConfig, make_app, spec

LOGIN = f"alice={API}/login?username=alice&password=wonderland"


@pytest.fixture(scope="module")
def target() -> Iterator[tuple[str, State]]:
    app, state = make_app(VulnConfig(vulnerable=True))
    server = ServerThread(app).start()
    yield server.url, state
    server.stop()


@pytest.fixture(scope="module")
def bystander() -> Iterator[tuple[str, State]]:
    """Another server on loopback that no scan of ``target`` may ever reach."""
    app, state = make_app(VulnConfig(vulnerable=True))
    server = ServerThread(app).start()
    yield server.url, state
    server.stop()


class Rogue(Check):
    """A check that tries to reach another origin, every way it can."""

    id = "rogue"
    title = "rogue"
    severity = Severity.INFO
    owasp = Owasp.API8
    cwe = 1
    why = fix = "-"
    other: ClassVar[str] = ""

    async def run(self, ctx: ScanContext) -> None:
        await ctx.send("GET", self.other + "steal")


async def test_target_refuses_another_origin(
    target: tuple[str, State], bystander: tuple[str, State]
) -> None:
    url, _ = target
    other, other_state = bystander
    before = len(other_state.requests)
    async with Target(url, rps=0) as t:
        for attempt in (
            other,
            other.replace("127.0.0.1", "localhost"),
            url.replace("http://", "https://"),
            "ftp://127.0.0.1/",
        ):
            with pytest.raises(OriginRefused):
                await t.request("GET", attempt)
        # A sibling is only the same host over plain HTTP on a port the user named.
        with pytest.raises(OriginRefused):
            await t.request("GET", other, sibling=True)
        assert t.sent == 0
    assert len(other_state.requests) == before


async def test_a_check_cannot_bypass_the_target(
    target: tuple[str, State], bystander: tuple[str, State], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = target
    other, other_state = bystander
    before = len(other_state.requests)
    monkeypatch.setattr(Rogue, "other", other)
    monkeypatch.setattr("bastion.scan._runner.ALL_CHECKS", (Rogue,))
    result = await run_scan(
        ScanConfig(
            base_url=url, rps=0, checks=["rogue"], openapi_text='{"openapi": "3.0.0", "paths": {}}'
        )
    )
    assert result.errors["rogue"].startswith("blocked")
    assert len(other_state.requests) == before


async def test_budget_is_never_exceeded(target: tuple[str, State]) -> None:
    url, state = target
    before = len(state.requests)
    result = await run_scan(
        ScanConfig(base_url=url, rps=0, max_requests=25, logins=[parse_login(LOGIN)])
    )
    assert result.requests_sent == 25
    assert len(state.requests) - before == 25
    assert any("budget" in why for why in result.errors.values())


async def test_rate_is_honoured(target: tuple[str, State]) -> None:
    url, state = target
    before = len(state.requests)
    await run_scan(ScanConfig(base_url=url, rps=10, max_requests=12, logins=[parse_login(LOGIN)]))
    times = sorted(t for t, _m, _p in state.requests[before:])
    assert len(times) == 12
    assert times[-1] - times[0] >= 11 / 10 * 0.9  # 12 requests at 10/s span >= 1.1 s
    for i, start in enumerate(times):  # and no second holds more than the rate allows
        assert sum(1 for t in times[i:] if t - start < 1.0) <= 11


async def test_dry_run_sends_nothing(target: tuple[str, State]) -> None:
    url, state = target
    before = len(state.requests)
    result = await run_scan(ScanConfig(base_url=url, dry_run=True, logins=[parse_login(LOGIN)]))
    await asyncio.sleep(0.2)
    assert len(state.requests) == before
    assert result.requests_sent == 0
    assert result.findings == []
    assert result.planned
    assert all(line.split(" ", 3)[2].startswith(url) or " TLS " in line for line in result.planned)


async def test_dry_run_lists_every_request_known_without_answers(
    target: tuple[str, State],
) -> None:
    url, state = target
    before = len(state.requests)
    config = ScanConfig(
        base_url=url,
        dry_run=True,
        logins=[parse_login(LOGIN)],
        openapi_text=json.dumps(spec(VulnConfig())),
    )
    result = await run_scan(config)
    assert len(state.requests) == before
    by_check: dict[str, list[str]] = {}
    for line in result.planned:
        check, _, request = line.partition("] ")
        by_check.setdefault(check.lstrip("["), []).append(request)
    # Not only the opening request: each protected GET twice (no credential, garbage).
    # ...except GETs named like actions (/archive): those change state, reads skip them.
    paths = spec(VulnConfig())["paths"].items()
    protected = [
        p
        for name, p in paths
        if "get" in p and "security" not in p["get"] and "archive" not in name
    ]
    assert len(by_check["unauthenticated_access"]) == len(protected)
    assert len(by_check["exposed_docs"]) > 10
    assert len(by_check["trace_method"]) == 2  # the base URL and one operation
    # Per check, the plan says what it cannot list without answers.
    assert "trace_method" not in result.plan_notes
    assert "answers" in result.plan_notes["unauthenticated_access"]
    assert "depends on an answer" in result.plan_notes["bola"]


async def test_network_failures_are_not_findings_nor_a_clean_scan() -> None:
    from tests._services import free_port

    url = f"http://127.0.0.1:{free_port()}/"  # nothing listens here
    # Not "0 findings" either (that read as a clean target): an error saying why.
    with pytest.raises(TargetUnreachable, match=r"answered none .*Connection refused"):
        await run_scan(ScanConfig(base_url=url, rps=0, timeout=1))


def test_unsafe_methods_are_not_sent_by_default(target: tuple[str, State]) -> None:
    url, state = target
    before = len(state.requests)
    asyncio.run(run_scan(ScanConfig(base_url=url, rps=0, logins=[parse_login(LOGIN)])))
    methods = {m for _t, m, _p in state.requests[before:]}
    assert "DELETE" not in methods
    assert "PUT" not in methods
    assert httpx.get(url, timeout=5).status_code == 200  # the target is still up


class Tarpit:
    """A raw HTTP server on loopback that answers one byte at a time, forever: the
    head (``stage="head"``) or the body (``stage="body"``) never ends."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.server: asyncio.Server | None = None

    async def _serve(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n"
        if self.stage == "body":
            writer.write(head + b"\r\n")
        try:
            for i in range(10_000):
                writer.write(b"x" if self.stage == "body" else b"X-Slow-%d: 1\r\n" % i)
                await writer.drain()
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


@pytest.mark.parametrize("stage", ["head", "body"])
async def test_a_target_that_answers_forever_is_a_timeout(stage: str) -> None:
    """``--timeout`` bounds a whole request: a target that keeps sending a byte now and
    then (each read well within the timeout) cannot hold the scanner."""
    async with Tarpit(stage) as url, Target(url, rps=0, timeout=1.0) as target:
        started = asyncio.get_running_loop().time()
        with pytest.raises(httpx.TimeoutException):
            await target.request("GET", "/")
        assert asyncio.get_running_loop().time() - started < 3
        started = asyncio.get_running_loop().time()
        with pytest.raises(httpx.TimeoutException):
            await target.request("GET", "/", timeout=0.5)  # a probe's own bound
        assert asyncio.get_running_loop().time() - started < 2


def spec_server(description_bytes: int) -> ServerThread:
    """A target whose /openapi.json has one operation and a description this long."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    doc = {
        "openapi": "3.0.3",
        "info": {"title": "big", "version": "1", "description": "d" * description_bytes},
        "paths": {"/widgets": {"get": {"responses": {"200": {"description": "ok"}}}}},
    }
    body = json.dumps(doc).encode()

    async def openapi(_request: object) -> Response:
        return Response(body, media_type="application/json")

    return ServerThread(Starlette(routes=[Route("/openapi.json", openapi)])).start()


async def test_a_large_openapi_document_is_read_whole_or_named_too_large(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Large APIs publish multi-megabyte documents: one past the 512 KiB evidence cap was
    # cut, failed to parse and read as "no OpenAPI document found".
    from bastion.scan import SpecError, _runner
    from bastion.scan._model import ScanResult

    server = spec_server(1024 * 1024)
    try:
        async with Target(server.url, rps=0) as target:
            result = ScanResult(server.url, [], [])
            spec = await _runner._load_spec(target, ScanConfig(base_url=server.url), result)
            assert [op.path for op in spec.operations] == ["/widgets"]
            assert "discovery" not in result.skipped
            # Past the spec cap (lowered here), the scan says so and how to go on.
            monkeypatch.setattr(_runner, "MAX_SPEC_BODY", 512 * 1024)
            result = ScanResult(server.url, [], [])
            spec = await _runner._load_spec(target, ScanConfig(base_url=server.url), result)
            assert spec.operations == []
            assert "larger than 0.5 MiB: pass it with --openapi FILE" in result.errors["discovery"]
            named = ScanConfig(base_url=server.url, openapi_path="/openapi.json")
            with pytest.raises(SpecError, match="--openapi FILE"):
                await _runner._load_spec(target, named, ScanResult(server.url, [], []))
    finally:
        server.stop()


async def test_a_websocket_handshake_never_shares_a_connection() -> None:
    """A refused handshake's connection is not kept for other requests (a server may
    close it after its answer), and the 101 of an accepted one ends its connection once
    the target's first words are read."""
    seen: list[list[bytes]] = []  # request lines per connection
    ended: list[int] = []  # connections the scanner closed
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines: list[bytes] = []
        seen.append(lines)
        writers.append(writer)
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break  # the scanner closed the connection
            lines.append(head.split(b"\r\n", 1)[0])
            if b"/open" in head:  # a WebSocket that says one text frame, then waits
                writer.write(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n\x81\x02hi"
                )
                await writer.drain()
                await reader.read()  # until the scanner hangs up
                break
            status = b"403 Forbidden" if b"upgrade" in head.lower() else b"200 OK"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        ended.append(seen.index(lines))
        writer.close()

    async def run(target: Target, path: str, **headers: str) -> int:
        return (await target.request("GET", path, headers=headers, listen=1.0)).status

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    shake = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
    try:
        async with Target(url, rps=0, concurrency=1) as target:
            assert await run(target, "/a") == 200
            assert await run(target, "/ws", **shake) == 403
            assert await run(target, "/b") == 200
            assert await run(target, "/ws", **shake) == 403
            opened = await target.request("GET", "/open", headers=shake, listen=1.0)
            assert (opened.status, opened.text) == (101, "[message] hi")
            assert await run(target, "/c") == 200
            for _ in range(50):  # the refused handshakes' connections are closed
                if len(ended) >= 3:
                    break
                await asyncio.sleep(0.02)
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)
        await server.wait_closed()
    handshakes = [lines for lines in seen if any(b"/ws" in x or b"/open" in x for x in lines)]
    assert len(handshakes) == 3
    assert all(len(lines) == 1 for lines in handshakes)  # alone on their connections
    plain = [x for lines in seen for x in lines if x.startswith(b"GET /a") or b"/b" in x]
    assert len(plain) == 2
    assert len(ended) >= 3
