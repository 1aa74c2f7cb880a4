"""In-process micro-benchmarks (no network): µs per ``Gateway.decide`` and per component,
on the same deployment and config the load runs use. Helps locate where a request's
time goes before reaching for a profiler.

    .venv/bin/python bench/gateway.py --micro-only
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bastion.config import AuthMethod, load_config
from bastion.gateway import forward_auth
from bastion.gateway.app import GatewayApp
from bastion.gateway.runtime import Runtime

N = 20_000
ROUNDS = 5


def best_us(fn: Callable[[], Any], n: int = N) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


async def best_us_async(fn: Callable[[], Awaitable[Any]], n: int = N) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def _scope(headers: dict[str, str], path: str = "/_bastion/auth") -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "scheme": "http",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
    }


async def _noop_send(message: Any) -> None:
    return None


class _Reply:
    """All granian's RSGI protocol does for a body-less forward-auth reply."""

    status = 0

    def response_empty(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.status = status


async def _measure(config_file: Path, token: str, api_key: str) -> list[tuple[str, float]]:
    config = load_config(config_file)
    rt = await Runtime.start(config)
    try:
        return await _components(rt, token, api_key)
    finally:
        await rt.aclose()


async def _components(rt: Runtime, token: str, api_key: str) -> list[tuple[str, float]]:
    gw, limiter, audit, metrics = rt.gateway, rt.limiter, rt.audit, rt.metrics
    base = {
        "host": "127.0.0.1:8080",
        "x-forwarded-method": "GET",
        "x-forwarded-uri": "/api/orders/42?x=1",
        "user-agent": "wrk",
    }
    jwt_scope = _scope({**base, "authorization": f"Bearer {token}"})
    key_scope = _scope({**base, "x-api-key": api_key})
    signed_scope = _scope(
        {**base, "x-forwarded-uri": "/signed/x", "authorization": f"Bearer {token}"}
    )
    jwt_view = forward_auth.view_from_forwarded(jwt_scope, rt.trust)
    key_view = forward_auth.view_from_forwarded(key_scope, rt.trust)
    signed_view = forward_auth.view_from_forwarded(signed_scope, rt.trust)
    for view in (jwt_view, key_view, signed_view):  # warm caches: token, key record
        decision = await gw.decide(view, "forward_auth")
        if not decision.allowed:
            raise RuntimeError(f"micro set-up: {view.path} denied: {decision.reason}")
    jwt_decision = await gw.decide(jwt_view, "forward_auth")
    route = jwt_decision.route
    principal = jwt_decision.principal
    if route is None or principal is None:
        raise RuntimeError("micro set-up: no route or principal")
    bearer = gw.authenticators[AuthMethod.JWT]
    apikey = gw.authenticators[AuthMethod.API_KEY]
    rate = "100000000/minute"
    app = GatewayApp(rt.config, rt)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    rows: list[tuple[str, float]] = []

    async def add_async(name: str, fn: Callable[[], Awaitable[Any]], n: int = N) -> None:
        rows.append((name, await best_us_async(fn, n)))

    def add(name: str, fn: Callable[[], Any], n: int = N) -> None:
        rows.append((name, best_us(fn, n)))

    from tests.gateway.rsgi_fake import scope as rsgi_scope

    fwd = {k: v for k, v in base.items() if k != "host"}
    rsgi_jwt = rsgi_scope("GET", "/_bastion/auth", {**fwd, "authorization": f"Bearer {token}"})
    rsgi_key = rsgi_scope("GET", "/_bastion/auth", {**fwd, "x-api-key": api_key})
    reply = _Reply()  # the test double builds an asyncio.Event per call: a few µs

    async def rsgi(request: Any) -> None:
        await app.__rsgi__(request, reply)

    for request in (rsgi_jwt, rsgi_key):
        await rsgi(request)
        if reply.status != 200:
            raise RuntimeError(f"micro set-up: RSGI forward auth answered {reply.status}")

    await add_async("RSGI app, forward-auth JWT (what granian calls)", lambda: rsgi(rsgi_jwt))
    await add_async("RSGI app, forward-auth API key", lambda: rsgi(rsgi_key))
    await add_async(
        "ASGI app, forward-auth JWT (app + decide, no server)",
        lambda: app(jwt_scope, receive, _noop_send),
    )
    await add_async("ASGI app, forward-auth API key", lambda: app(key_scope, receive, _noop_send))
    await add_async(
        "Gateway.decide, JWT (verified-token cache hit)",
        lambda: gw.decide(jwt_view, "forward_auth"),
    )
    await add_async(
        "Gateway.decide, API key (key cache hit)", lambda: gw.decide(key_view, "forward_auth")
    )
    await add_async(
        "Gateway.decide, JWT, route with signed assertion",
        lambda: gw.decide(signed_view, "forward_auth"),
        n=2000,
    )
    add(
        "  view_from_forwarded (headers, trust, request id)",
        lambda: forward_auth.view_from_forwarded(jwt_scope, rt.trust),
    )
    add("  route match (normalise + table)", lambda: gw.match(jwt_view))
    add("  input guard (sizes)", lambda: gw._guard(jwt_view))
    ip_check = limiter.prepare([("ip", rate, "127.0.0.1")])
    add("  limiter hit (memory, sliding window)", lambda: limiter.hit_all_now(ip_check))
    await add_async(
        "  failures_blocked (2 peeks)",
        lambda: limiter.failures_blocked(account="alice", ip="127.0.0.1"),
    )
    await add_async("  bearer authenticate (cache hit)", lambda: bearer.authenticate(jwt_view))
    await add_async(
        "  api-key authenticate (HMAC + cache hit)", lambda: apikey.authenticate(key_view)
    )
    plan = gw._plan(principal, route)
    add("  identity headers", lambda: gw._identity_headers(plan, principal, route, jwt_view))
    add(
        "  observer.decided (audit + metrics)",
        lambda: gw.observer.decided(jwt_view, jwt_decision, "forward_auth", 0.0001),
    )
    event = {
        "request_id": "abc", "client_ip": "127.0.0.1", "method": "GET", "host": "h",
        "path": "/api/orders/42", "route": "api", "front_door": "forward_auth",
        "principal": "alice", "credential": "jwt", "key_id": None, "issuer": "https://i",
        "outcome": "allow", "status": 200, "reason": "ok", "latency_ms": 0.05,
    }  # fmt: skip
    add(
        "  audit emit (one decision line, buffered)",
        lambda: audit.emit(event, plain_keys=True),
    )
    add(
        "  metrics.decision (counter + histogram)",
        lambda: metrics.decision(
            route="api",
            outcome="allow",
            credential="jwt",
            reason="ok",
            front_door="forward_auth",
            seconds=0.0001,
        ),
    )
    signer = gw.signer
    if signer is not None:
        add(
            "  assertion sign (ES256 JWT per request)",
            lambda: signer.sign(principal, "http://up", "rid"),
            n=2000,
        )
    rows += _pyjwt(token, rt)
    return rows


def _pyjwt(token: str, rt: Runtime) -> list[tuple[str, float]]:
    """What baseline B pays on every request: PyJWT ES256 decode + checks."""
    try:
        import jwt
    except ImportError:
        return []
    issuer = rt.config.issuers[0]
    from joserfc.jwk import ECKey

    key = ECKey.import_key(issuer.keys[0]).as_pem(private=False)
    aud = issuer.audiences[0]

    def decode() -> Any:
        return jwt.decode(token, key, algorithms=["ES256"], audience=aud, issuer=issuer.issuer)

    pem_key = jwt.algorithms.ECAlgorithm(jwt.algorithms.ECAlgorithm.SHA256).prepare_key(key)

    def decode_prepared() -> Any:
        return jwt.decode(token, pem_key, algorithms=["ES256"], audience=aud, issuer=issuer.issuer)

    return [
        ("PyJWT ES256 decode, PEM parsed per call (baseline B)", best_us(decode, 2000)),
        ("PyJWT ES256 decode, key parsed once", best_us(decode_prepared, 2000)),
    ]


def run_micro(folder: Path) -> list[tuple[str, float]]:
    """Build a deployment in ``folder`` and time the pieces of one decision."""
    import sys

    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from gateway import bench_overrides

    from tests._deploy import make_deployment

    upstream = "http://127.0.0.1:9"
    deployment = asyncio.run(make_deployment(folder, upstream, **bench_overrides(8080, upstream)))
    token = deployment.jwt(exp=int(time.time()) + 3600)
    return asyncio.run(_measure(deployment.config_file, token, deployment.api_key))


def print_micro(rows: list[tuple[str, float]]) -> str:
    lines = [f"{'in-process micro-benchmark (best of 5)':<58} {'µs/call':>8}"]
    lines.append("-" * len(lines[0]))
    lines += [f"{name:<58} {us:8.2f}" for name, us in rows]
    return "\n".join(lines)
