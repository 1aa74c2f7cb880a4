"""granian's RSGI interface: the native forward-auth path, the bridge to the ASGI app,
and when ``bastion serve`` chooses it (the real granian is in tests/interop)."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import yaml

from bastion.cli.serve import server_spec
from bastion.config import load_config
from bastion.gateway import _rsgi
from bastion.gateway._asgi import Message, Receive, Scope, Send
from bastion.gateway.app import GatewayApp
from bastion.gateway.runtime import Runtime
from tests._deploy import Deployment
from tests.gateway.rsgi_fake import FakeHeaders, FakeProtocol, scope


async def test_forward_auth_allows_with_identity_headers(
    app: GatewayApp, deployment: Deployment
) -> None:
    fwd = {"x-forwarded-method": "GET", "x-forwarded-uri": "/api/orders?x=1"}
    allowed, refused = FakeProtocol(), FakeProtocol()
    await app.__rsgi__(
        scope("GET", "/_bastion/auth", {**fwd, "x-api-key": deployment.api_key}), allowed
    )
    await app.__rsgi__(scope("GET", "/_bastion/auth", fwd), refused)
    assert allowed.calls == ["empty"]  # no body, one synchronous reply
    assert allowed.status == 200
    assert allowed.header("x-bastion-subject") == "alice"
    assert allowed.header("x-bastion-route") == "api"
    assert refused.status == 401
    assert refused.header("x-bastion-error") == "unauthenticated"
    assert refused.header("www-authenticate") is not None


async def test_forward_auth_refuses_untrusted_peers_and_missing_headers(
    app: GatewayApp, deployment: Deployment
) -> None:
    key = {"x-api-key": deployment.api_key}
    fwd = {"x-forwarded-method": "GET", "x-forwarded-uri": "/api/orders"}
    untrusted, missing, bad_method = FakeProtocol(), FakeProtocol(), FakeProtocol()
    await app.__rsgi__(
        scope("GET", "/_bastion/auth", {**fwd, **key}, client="203.0.113.7:5000"), untrusted
    )
    await app.__rsgi__(scope("GET", "/_bastion/auth", key), missing)
    await app.__rsgi__(
        scope("GET", "/_bastion/auth", {**fwd, **key, "x-forwarded-method": "TRACE"}), bad_method
    )
    assert (untrusted.status, untrusted.header("x-bastion-error")) == (403, "forbidden")
    assert (missing.status, missing.header("x-bastion-error")) == (400, "invalid_request")
    assert missing.header("x-bastion-status") == "400"
    assert bad_method.status == 400


async def test_repeated_headers_are_joined_as_in_asgi(
    app: GatewayApp, runtime: Runtime, deployment: Deployment
) -> None:
    # Two X-Forwarded-For lines are one list: the client is the right-most untrusted hop.
    headers = FakeHeaders(
        [
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/api/x"),
            ("x-api-key", deployment.api_key),
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "192.0.2.44"),
        ]
    )
    assert _rsgi.header_dict(headers)["x-forwarded-for"] == "198.51.100.1, 192.0.2.44"
    protocol = FakeProtocol()
    request = scope("GET", "/_bastion/auth", {})
    request.headers = headers
    await app.__rsgi__(request, protocol)
    assert protocol.status == 200
    # The audit line names the client the proxies reported.
    runtime.audit.flush()
    lines = [orjson.loads(x) for x in deployment.audit_log.read_bytes().splitlines()]
    assert lines[-1]["client_ip"] == "192.0.2.44"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:5000", ("127.0.0.1", 5000)),
        ("[::1]:443", ("::1", 443)),
        ("[2001:db8::7]:1", ("2001:db8::7", 1)),
        ("garbage", ("", 0)),
        ("host:port", ("", 0)),
    ],
)
def test_addresses_split(value: str, expected: tuple[str, int]) -> None:
    assert _rsgi.split_address(value) == expected


async def test_prefix_form_is_refused_without_a_raw_path(
    app: GatewayApp, deployment: Deployment
) -> None:
    # RSGI paths arrive decoded: "/a%2Fb" and "/a/b" look alike, so bastion will not decide
    # on them while Envoy forwards the original (tests/gateway/test_front_doors.py has the
    # ASGI form, which has the raw path).
    protocol = FakeProtocol()
    key = {"x-api-key": deployment.api_key}
    await app.__rsgi__(scope("GET", "/_bastion/auth/api/orders", key), protocol)
    assert protocol.status == 400
    assert protocol.header("x-bastion-error") == "raw_path_unavailable"


async def test_bridge_serves_the_asgi_parts(app: GatewayApp) -> None:
    health, discovery, token = FakeProtocol(), FakeProtocol(), FakeProtocol(b"grant_type=nope")
    await app.__rsgi__(scope("GET", "/healthz", {}), health)
    await app.__rsgi__(scope("GET", "/.well-known/openid-configuration", {}), discovery)
    form = {"content-type": "application/x-www-form-urlencoded", "content-length": "15"}
    await app.__rsgi__(scope("POST", "/oauth2/token", form), token)
    assert (health.status, health.body) == (200, b'{"status":"ok"}')
    assert health.header("content-length") is None  # granian frames the body itself
    assert health.header("x-content-type-options") == "nosniff"
    assert discovery.status == 200
    assert orjson.loads(discovery.body)["token_endpoint"].endswith("/oauth2/token")
    # The form body was read: the grant type is judged, and the client error is JSON.
    assert token.status in (400, 401)
    assert orjson.loads(token.body)["error"] in ("invalid_client", "unsupported_grant_type")


async def _app_streaming(scope: Scope, receive: Receive, send: Send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message["body"]
        if not message["more_body"]:
            break
    assert body == b"in"
    await send({"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]})
    for _ in range(40):  # 40 x 4 KiB: the first 64 KiB are held, then it streams
        await send({"type": "http.response.body", "body": b"x" * 4096, "more_body": True})
    await send({"type": "http.response.body", "body": b"end"})


async def _app_pieces(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"a", "more_body": True})
    await send({"type": "http.response.body", "body": b"b"})


async def _app_silent(scope: Scope, receive: Receive, send: Send) -> None:
    return None


async def _app_broken(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("bug")


async def test_bridge_streams_large_bodies_and_joins_small_pieces() -> None:
    big, small = FakeProtocol(b"in"), FakeProtocol()
    await _rsgi.run_asgi(_app_streaming, scope("POST", "/x", {}), big)
    await _rsgi.run_asgi(_app_pieces, scope("GET", "/x", {}), small)
    assert big.calls == ["stream"]
    assert big.status == 201
    assert big.body == b"x" * 4096 * 40 + b"end"
    assert (small.calls, small.body) == (["bytes"], b"ab")


async def test_bridge_answers_500_for_an_app_that_fails_or_says_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken, silent = FakeProtocol(), FakeProtocol()
    await _rsgi.run_asgi(_app_broken, scope("GET", "/x", {}), broken)
    await _rsgi.run_asgi(_app_silent, scope("GET", "/x", {}), silent)
    assert (broken.status, silent.status) == (500, 500)
    assert "request failed" in caplog.text


async def test_bridge_streams_the_request_body_so_the_app_can_stop_early(
    app: GatewayApp,
) -> None:
    # The token endpoint refuses a form over its limit as it reads: the bridge must hand
    # the body over in chunks, not read the whole 1 MiB first.
    big = FakeProtocol(b"grant_type=" + b"x" * (1 << 20))
    form = {"content-type": "application/x-www-form-urlencoded"}  # no length: chunked
    await app.__rsgi__(scope("POST", "/oauth2/token", form), big)
    assert big.status == 400
    assert orjson.loads(big.body)["error"] == "invalid_request"
    assert big.chunks_read <= 17  # of 257: it stopped past its 64 KiB limit


async def test_bridge_reports_the_disconnect_after_the_body() -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await receive())
        received.append(await receive())
        received.append(await receive())  # waits for the client to go away

    protocol = FakeProtocol(b"body")
    task = asyncio.create_task(_rsgi.run_asgi(app, scope("POST", "/x", {}), protocol))
    await asyncio.sleep(0.01)
    assert received == [
        {"type": "http.request", "body": b"body", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False},
    ]
    protocol.disconnected.set()
    await task
    assert received[2] == {"type": "http.disconnect"}


def test_serve_picks_rsgi_only_without_proxied_routes(deployment: Deployment) -> None:
    assert server_spec(deployment.config)["interface"] == "asgi"  # it has upstreams
    data = orjson.loads(orjson.dumps(deployment.config.model_dump(mode="json")))
    for route in data["routes"]:
        route["upstream"] = None
    path = deployment.folder / "fa.yaml"
    path.write_text(yaml.safe_dump(data))
    assert server_spec(load_config(path))["interface"] == "rsgi"
