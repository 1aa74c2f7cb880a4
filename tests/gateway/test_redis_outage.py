"""Revocation while Redis is out: recorded in the database, honoured everywhere once
Redis is back, known to instances started later; and what stays fail-closed."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from bastion.gateway.app import GatewayApp
from bastion.gateway.runtime import Runtime
from bastion.oauth.clients import ClientStore, record_from_metadata
from bastion.oauth.revocation import RevocationMirror
from bastion.store import open_store
from tests._deploy import Deployment, make_deployment
from tests._polling import eventually
from tests._services import PrivateRedis, free_port, private_redis

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    with private_redis(tmp_path / "redis") as server:
        yield server


async def _client(d: Deployment) -> tuple[str, str]:
    async with open_store(d.config) as ctx:
        metadata = {"client_name": "svc", "grant_types": ["client_credentials"], "scope": "read"}
        created = await ClientStore(ctx.engine, ctx.keyring.client_secret_hmac).create(
            record_from_metadata(metadata)
        )
    assert created.secret is not None
    return created.record.client_id, created.secret


def _http(d: Deployment, rt: Runtime) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=GatewayApp(d.config, rt), client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url=d.config.issuer_url)


def _mirror(rt: Runtime) -> RevocationMirror:
    assert rt.oauth is not None
    return rt.oauth.server.ctx.revocations


def _jti(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


@pytest.fixture
async def instances(
    tmp_path: Path, upstream: str, pg_database: str, redis_server: PrivateRedis
) -> AsyncIterator[tuple[Deployment, list[Runtime]]]:
    # No periodic database sync within the test: only the way back through Redis counts.
    d = await make_deployment(
        tmp_path / "d",
        upstream,
        storage_url=pg_database,
        redis_url=redis_server.url,
        oauth={"revocation_sync_seconds": 300},
    )
    runtimes = [await Runtime.start(d.config), await Runtime.start(d.config)]
    yield d, runtimes
    for rt in runtimes:
        await rt.aclose()


@pytest.mark.postgres
async def test_a_revocation_asked_for_while_redis_is_out_holds_everywhere(
    instances: tuple[Deployment, list[Runtime]], redis_server: PrivateRedis
) -> None:
    # It used to answer 503 (the per-address limit before the endpoint could not reach
    # its counters) and was lost: the token kept working on every instance.
    d, (first, second) = instances
    client = await _client(d)
    for rt in (first, second):
        assert await eventually(_mirror(rt).subscribed.is_set, 15)
    a, b = _http(d, first), _http(d, second)
    try:
        grant = {"grant_type": "client_credentials", "scope": "read"}
        token = (await a.post("/oauth2/token", data=grant, auth=client)).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await b.get("/api/x", headers=bearer)).status_code == 200

        redis_server.stop()
        assert (await b.get("/api/x", headers=bearer)).status_code == 503  # fail closed
        assert (await a.post("/oauth2/token", data=grant, auth=client)).status_code == 503
        form = {"token": token, "token_type_hint": "access_token"}
        revoked = await a.post("/oauth2/revoke", data=form, auth=client)
        assert revoked.status_code == 200
        assert first.revocations.is_revoked(_jti(token))  # here at once
        assert not second.revocations.is_revoked(_jti(token))  # Redis carries it: out

        redis_server.start()
        assert await eventually(lambda: second.revocations.is_revoked(_jti(token)), 15)
        refused = await b.get("/api/x", headers=bearer)
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
        later = await Runtime.start(d.config)  # an instance started afterwards
        try:
            async with _http(d, later) as c:
                assert (await c.get("/api/x", headers=bearer)).status_code == 401
        finally:
            await later.aclose()
    finally:
        await a.aclose()
        await b.aclose()


async def test_only_requests_that_take_access_away_pass_while_redis_is_out(
    tmp_path: Path, upstream: str
) -> None:
    # With the counters out, revocation and sign-out are limited per instance instead of
    # refused; everything else, other spellings of those paths included, fails closed.
    d = await make_deployment(
        tmp_path / "d",
        upstream,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        rate_limits={"per_ip": "3/minute"},
    )
    rt = await Runtime.start(d.config)
    try:
        async with _http(d, rt) as http:
            form = {"token": "whatever"}
            answers = [(await http.post("/oauth2/revoke", data=form)).status_code for _ in range(4)]
            # No client credentials: invalid_client, 400 without Authorization (RFC 6749
            # §5.2); then the limit.
            assert answers == [400, 400, 400, 429]
            for path in ("/oauth2/token", "/oauth2/revoke/", "/oauth2//revoke", "/oauth2/REVOKE"):
                refused = await http.post(path, data=form)
                assert refused.status_code == 503, path
            assert (await http.get("/oauth2/logout")).status_code == 429  # same budget
    finally:
        await rt.aclose()
