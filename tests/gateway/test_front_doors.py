"""The three front doors give the same decision for the same request (one core);
forward auth is asked over both ASGI and granian's RSGI."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bastion.config import load_config
from bastion.gateway.app import GatewayApp
from bastion.gateway.middleware import BastionMiddleware
from bastion.gateway.runtime import Runtime
from tests._deploy import PASSWORD, Deployment, make_deployment
from tests.gateway.rsgi_fake import FakeProtocol, scope


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def cases(d: Deployment) -> list[tuple[str, str, str, dict[str, str], int]]:
    """(name, method, path?query, headers, expected status)"""
    expired = d.jwt(exp=1_000_000_000, iat=999_999_000)
    return [
        ("public", "GET", "/public/x", {}, 200),
        ("no credential", "GET", "/api/x", {}, 401),
        ("api key", "GET", "/api/x", {"X-API-Key": d.api_key}, 200),
        ("api key as bearer", "GET", "/api/x", {"Authorization": f"Bearer {d.api_key}"}, 200),
        ("tampered api key", "GET", "/api/x", {"X-API-Key": d.api_key[:-3] + "AAA"}, 401),
        ("key in query", "GET", f"/api/x?api_key={d.api_key}", {}, 401),
        ("jwt", "GET", "/api/x", {"Authorization": f"Bearer {d.jwt()}"}, 200),
        ("expired jwt", "GET", "/api/x", {"Authorization": f"Bearer {expired}"}, 401),
        ("wrong audience", "GET", "/api/x", {"Authorization": f"Bearer {d.jwt(aud='x')}"}, 401),
        ("basic", "POST", "/api/x", {"Authorization": basic("alice", PASSWORD)}, 200),
        ("basic wrong pw", "GET", "/api/x", {"Authorization": basic("alice", "nope")}, 401),
        ("basic unknown", "GET", "/api/x", {"Authorization": basic("mallory", "nope")}, 401),
        ("garbage auth", "GET", "/api/x", {"Authorization": "Bearer a.b"}, 401),
        ("missing scope", "GET", "/api/reports/1", {"X-API-Key": d.api_key}, 403),
        ("has scope", "GET", "/api/reports/1", {"X-API-Key": d.reports_key}, 200),
        ("missing role", "GET", "/api/admin/u", {"Authorization": basic("alice", PASSWORD)}, 403),
        ("has role", "GET", "/api/admin/u", {"Authorization": basic("root", PASSWORD)}, 200),
        ("no route", "GET", "/elsewhere", {"X-API-Key": d.api_key}, 404),
        ("dot segments", "GET", "/public/%2e%2e/api/admin/u", {}, 400),
        ("encoded slash", "GET", "/public%2f..%2fapi/admin/u", {}, 400),
    ]


def split(target: str) -> tuple[str, str]:
    path, _, query = target.partition("?")
    return path, query


async def via_proxy(app: GatewayApp, method: str, target: str, headers: dict[str, str]) -> int:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        return (await client.request(method, target, headers=headers)).status_code


async def via_forward_auth(
    app: GatewayApp, method: str, target: str, headers: dict[str, str]
) -> int:
    transport = httpx.ASGITransport(app=app)
    forwarded = {**headers, "X-Forwarded-Method": method, "X-Forwarded-Uri": target}
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.get("/_bastion/auth", headers=forwarded)
        assert response.content == b""  # forward-auth replies carry no body
        return response.status_code


async def via_forward_auth_rsgi(
    app: GatewayApp, method: str, target: str, headers: dict[str, str]
) -> int:
    """The forward-auth endpoint as granian's RSGI interface calls it (bastion serve
    picks RSGI for deployments without proxied routes)."""
    forwarded = {**headers, "X-Forwarded-Method": method, "X-Forwarded-Uri": target}
    protocol = FakeProtocol()
    await app.__rsgi__(scope("GET", "/_bastion/auth", forwarded), protocol)
    assert protocol.calls == ["empty"]  # no body
    assert protocol.status is not None
    return protocol.status


def embedded_app(runtime: Runtime) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        principal = request.state.principal
        return JSONResponse({"subject": principal.subject})

    routes = [Route("/{path:path}", echo, methods=["GET", "POST", "HEAD"])]
    app = Starlette(routes=routes)
    app.add_middleware(BastionMiddleware, runtime=runtime)
    return app


async def via_middleware(app: Starlette, method: str, target: str, headers: dict[str, str]) -> int:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        return (await client.request(method, target, headers=headers)).status_code


async def test_three_front_doors_agree(
    app: GatewayApp, runtime: Runtime, deployment: Deployment
) -> None:
    embedded = embedded_app(runtime)
    results: dict[str, tuple[int, int, int, int]] = {}
    for name, method, target, headers, _ in cases(deployment):
        results[name] = (
            await via_proxy(app, method, target, headers),
            await via_forward_auth(app, method, target, headers),
            await via_forward_auth_rsgi(app, method, target, headers),
            await via_middleware(embedded, method, target, headers),
        )
    expected = {name: (s, s, s, s) for name, _, _, _, s in cases(deployment)}
    assert results == expected


async def test_proxy_strips_spoofed_identity_and_credentials(
    app: GatewayApp, deployment: Deployment
) -> None:
    transport = httpx.ASGITransport(app=app)
    spoof = {
        "X-API-Key": deployment.api_key,
        "X-Bastion-Subject": "root",
        "x-bastion-roles": "admin",
        "X-Bastion-Assertion": "forged",
        "Connection": "keep-alive, X-Secret-Hop",
        "X-Secret-Hop": "must not pass",
        "X-Forwarded-For": "198.51.100.7",
    }
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.get("/api/things?x=1", headers=spoof)
    assert response.status_code == 200
    seen = response.json()
    headers: dict[str, Any] = seen["headers"]
    assert headers["x-bastion-subject"] == "alice"
    assert headers["x-bastion-roles"] == ""
    assert headers["x-bastion-assertion"] != "forged"
    assert "x-api-key" not in headers
    assert "authorization" not in headers
    assert seen["query"] == "x=1"
    # ASGITransport's peer is 127.0.0.1 (trusted), so the hop it names is kept.
    assert headers["x-forwarded-for"] == "198.51.100.7"


async def test_proxy_streams_large_bodies_both_ways(
    app: GatewayApp, deployment: Deployment
) -> None:
    transport = httpx.ASGITransport(app=app)
    body = b"x" * (3 * 1024 * 1024)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.post(
            "/public/upload", content=body, headers={"Content-Type": "application/octet-stream"}
        )
    assert response.status_code == 200
    assert response.json()["body_bytes"] == len(body)


@pytest.mark.parametrize("size", [10, 64 * 1024, 64 * 1024 + 1, 5 * 1024 * 1024])
async def test_proxy_returns_small_and_large_responses_whole(
    app: GatewayApp, deployment: Deployment, size: int
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.get(f"/public/file?fill={size}")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(size)
    assert response.content == b"x" * size


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_health_endpoints(app: GatewayApp, path: str) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.get(path)
    assert response.status_code == 200
    if path == "/readyz":
        assert response.json()["checks"] == {"database": True, "audit": True}


async def test_metrics_only_for_allowed_peers(app: GatewayApp, deployment: Deployment) -> None:
    local = httpx.ASGITransport(app=app)
    remote = httpx.ASGITransport(app=app, client=("203.0.113.5", 5555))
    async with httpx.AsyncClient(transport=local, base_url="http://gw") as client:
        await client.get("/api/x", headers={"X-API-Key": deployment.api_key})
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert 'bastion_decisions_total{credential="api_key",outcome="allow"' in response.text
    async with httpx.AsyncClient(transport=remote, base_url="http://gw") as client:
        assert (await client.get("/metrics")).status_code == 404


async def test_forward_auth_refuses_untrusted_peer(app: GatewayApp, deployment: Deployment) -> None:
    remote = httpx.ASGITransport(app=app, client=("203.0.113.5", 5555))
    headers = {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Uri": "/api/x",
        "X-API-Key": deployment.api_key,
    }
    async with httpx.AsyncClient(transport=remote, base_url="http://gw") as client:
        response = await client.get("/_bastion/auth", headers=headers)
    assert response.status_code == 403
    assert "x-bastion-subject" not in response.headers


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 400),
        ({"X-Forwarded-Method": "GET"}, 400),
        ({"X-Forwarded-Method": "BREW", "X-Forwarded-Uri": "/api/x"}, 400),
        ({"X-Original-Method": "GET", "X-Original-URI": "/api/x"}, 401),
    ],
)
async def test_forward_auth_needs_the_original_request(
    app: GatewayApp, headers: dict[str, str], status: int
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.get("/_bastion/auth", headers=headers)
    assert response.status_code == status
    assert response.content == b""


async def test_upstream_down_is_502_not_500(tmp_path: Any) -> None:
    from bastion.gateway.runtime import Runtime as RT
    from tests._deploy import make_deployment
    from tests._services import free_port

    d = await make_deployment(tmp_path / "x", f"http://127.0.0.1:{free_port()}")
    rt = await RT.start(d.config)
    try:
        transport = httpx.ASGITransport(app=GatewayApp(d.config, rt))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            response = await client.get("/public/x")
        assert response.status_code == 502
        assert response.json()["code"] == "bad_gateway"
        assert response.headers["content-type"] == "application/problem+json"
    finally:
        await rt.aclose()


async def test_audit_log_has_one_line_per_decision_and_no_secret(
    app: GatewayApp, runtime: Runtime, deployment: Deployment
) -> None:
    for _, method, target, headers, _ in cases(deployment):
        await via_proxy(app, method, target, headers)
    runtime.audit.flush()
    text = deployment.audit_log.read_text()
    lines = text.splitlines()
    assert len(lines) == len(cases(deployment))
    for secret in deployment.secrets_used:
        assert secret not in text
        assert secret[-20:] not in text
    assert '"outcome":"allow"' in text
    assert '"reason":"api_key_in_query"' in text


async def test_envoy_ext_authz_path_prefix_form(app: GatewayApp, deployment: Deployment) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        allowed = await client.post(
            "/_bastion/auth/api/orders?x=1", headers={"X-API-Key": deployment.api_key}
        )
        refused = await client.post("/_bastion/auth/api/orders")
        scoped = await client.get(
            "/_bastion/auth/api/reports/q3", headers={"X-API-Key": deployment.api_key}
        )
        sneaky = await client.get(
            "/_bastion/auth/public/%2e%2e/api/admin", headers={"X-API-Key": deployment.api_key}
        )
    assert allowed.status_code == 200
    assert allowed.headers["x-bastion-subject"] == "alice"
    assert refused.status_code == 401
    assert scoped.status_code == 403
    assert sneaky.status_code == 400


async def test_proxied_responses_are_hardened(app: GatewayApp, deployment: Deployment) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        private = await client.get("/api/x", headers={"X-API-Key": deployment.api_key})
        public = await client.get("/public/x")
        tls = await client.get(
            "/api/x", headers={"X-API-Key": deployment.api_key, "X-Forwarded-Proto": "https"}
        )
    for response in (private, public):
        assert "server" not in response.headers  # the upstream's "aiohttp/x.y" is stripped
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert "strict-transport-security" not in response.headers
    assert private.headers["cache-control"] == "no-store"
    assert "cache-control" not in public.headers
    assert tls.headers["strict-transport-security"].startswith("max-age=31536000")


@contextlib.asynccontextmanager
async def limited_gateway(
    tmp_path: Path, upstream: str, **rate_limits: str
) -> AsyncIterator[tuple[Deployment, GatewayApp, httpx.AsyncClient]]:
    """A started gateway with these rate limits, and a client whose peer is 127.0.0.1:
    a trusted proxy here, so X-Forwarded-For names the client."""
    d = await make_deployment(tmp_path / "d", upstream, rate_limits=rate_limits)
    app = GatewayApp(load_config(d.config_file))
    await app.startup()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield d, app, client
    finally:
        await app.shutdown()


async def forward_auth(client: httpx.AsyncClient, ip: str, api_key: str) -> int:
    """The status of a forward-auth decision for ``api_key`` from client ``ip``."""
    headers = {
        "X-API-Key": api_key,
        "X-Forwarded-For": ip,
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Uri": "/api/x",
    }
    return (await client.get("/_bastion/auth", headers=headers)).status_code


async def test_the_per_ip_limit_counts_an_ipv6_client_by_its_64(
    tmp_path: Path, upstream: str
) -> None:
    async with limited_gateway(tmp_path, upstream, per_ip="2/minute") as (d, _app, client):
        # Three addresses of one /64 share its budget of two; another /64 has its own.
        asked = [await forward_auth(client, f"2001:db8:5:5::{n}", d.api_key) for n in (1, 2, 3)]
        assert asked == [200, 200, 429]
        assert await forward_auth(client, "2001:db8:5:6::1", d.api_key) == 200


async def test_others_failing_a_key_do_not_lock_its_owner_out(
    tmp_path: Path, upstream: str
) -> None:
    # Failed credentials are throttled per account (here: the key id) as well as per
    # address. Someone who knows a key's id could keep failing it and lock every user of
    # the key out; where the key authenticated before, only the address's count holds.
    limits = {"failed_auth_per_account": "3/minute", "failed_auth_per_ip": "100/minute"}
    async with limited_gateway(tmp_path, upstream, **limits) as (d, _app, client):
        key = d.api_key
        wrong = key[:-10] + ("a" if key[-10] != "a" else "b") + key[-9:]  # same key id
        assert await forward_auth(client, "198.51.100.1", key) == 200  # the owner, as usual
        attacks = [await forward_auth(client, "203.0.113.66", wrong) for _ in range(4)]
        assert attacks == [401, 401, 401, 429]  # the key's failure budget is spent
        assert await forward_auth(client, "198.51.100.99", key) == 429  # from somewhere new
        assert await forward_auth(client, "198.51.100.1", key) == 200  # its owner's address


async def test_the_authorization_servers_endpoints_are_limited_per_address(
    tmp_path: Path, upstream: str
) -> None:
    # The token endpoint (and every other of the authorization server's) authenticates
    # its callers itself; the per-address limit before authentication holds there too.
    form = {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"}
    async with limited_gateway(tmp_path, upstream, per_ip="3/minute") as (d, app, client):

        async def token(ip: str) -> httpx.Response:
            return await client.post("/oauth2/token", data=form, headers={"X-Forwarded-For": ip})

        answers = [await token("198.51.100.5") for _ in range(4)]
        assert all(a.status_code in (400, 401) for a in answers[:3])  # refused: no client
        limited = answers[3]
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert int(limited.headers["retry-after"]) > 0
        assert (await token("198.51.100.6")).status_code in (400, 401)  # another address
        assert app.runtime is not None
        app.runtime.audit.flush()
        lines = [orjson.loads(line) for line in d.audit_log.read_bytes().splitlines()]
        denied = [x for x in lines if x.get("front_door") == "authorization_server"]
        assert [(x["status"], x["client_ip"]) for x in denied] == [(429, "198.51.100.5")]
