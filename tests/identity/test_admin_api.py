"""The users admin API: admins only; create (policy applies), list with factors,
disable (sessions end), reset-mfa."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from bastion.gateway.app import GatewayApp
from bastion.oauth import _http
from tests._deploy import Deployment
from tests.identity._flows import enrol_totp, password_login
from tests.oauth._helpers import browser


def api(app: GatewayApp, issuer: str, key: str | None) -> httpx.AsyncClient:
    headers = {"x-api-key": key} if key else {}
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50010))
    return httpx.AsyncClient(transport=transport, base_url=issuer, headers=headers)


async def test_users_admin_api(app: GatewayApp, issuer: str, deployment: Deployment) -> None:
    anonymous = api(app, issuer, None)
    assert (await anonymous.get("/oauth2/admin/users")).status_code == 401
    user_key = api(app, issuer, deployment.api_key)
    assert (await user_key.get("/oauth2/admin/users")).status_code == 403
    admin = api(app, issuer, deployment.admin_key)
    weak = await admin.post(
        "/oauth2/admin/users", json={"username": "zoe", "password": "qwerty123"}
    )
    assert weak.status_code == 400
    assert weak.json()["error"] == "weak_password"
    made = await admin.post("/oauth2/admin/users", json={
        "username": "zoe", "password": "a long secret phrase here", "roles": ["user"]})  # fmt: skip
    assert made.status_code == 201
    assert "password" not in made.text
    agent = browser(app, issuer)
    await password_login(agent, "zoe", "a long secret phrase here")
    await enrol_totp(agent)
    listed = {u["username"]: u for u in (await admin.get("/oauth2/admin/users")).json()}
    assert listed["zoe"]["mfa"]["totp"] is True
    assert listed["zoe"]["mfa"]["recovery_codes"] == 10
    reset = await admin.post("/oauth2/admin/users/zoe/reset-mfa")
    assert reset.status_code == 200
    assert reset.json()["mfa"] == {"totp": False, "passkeys": 0, "recovery_codes": 0}
    assert reset.json()["sessions_ended"] == 1
    assert (await agent.get("/oauth2/account")).status_code == 303  # signed out
    await password_login(agent, "zoe", "a long secret phrase here")
    disabled = await admin.post("/oauth2/admin/users/zoe/disable")
    assert disabled.json()["disabled"] is True
    assert disabled.json()["sessions_ended"] == 1
    refused = await password_login(browser(app, issuer), "zoe", "a long secret phrase here")
    assert refused.status_code == 401
    assert (await admin.post("/oauth2/admin/users/ghost/disable")).status_code == 404
    for client in (anonymous, user_key, admin, agent):
        await client.aclose()


async def test_admin_bodies_are_read_only_up_to_their_limit(
    app: GatewayApp, issuer: str, deployment: Deployment
) -> None:
    # An endless body (no Content-Length) is refused once past the limit, without the
    # rest being read into memory first.
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < 4 * 1024 * 1024:
            sent += 4096
            yield b" " * 4096

    admin = api(app, issuer, deployment.admin_key)
    for path in ("/oauth2/admin/users", "/oauth2/admin/clients"):
        sent = 0
        answer = await admin.post(
            path, content=endless(), headers={"content-type": "application/json"}
        )
        assert answer.status_code == 400
        assert answer.json()["error_description"] == "the body is too large"
        assert sent <= 128 * 1024  # the limits are 16 and 64 KiB; 4 MiB were on offer
    await admin.aclose()


async def test_a_body_that_does_not_arrive_in_time_is_refused(
    app: GatewayApp, issuer: str, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A body that starts and then stalls (a byte at a time, or nothing more) is refused
    # once the deadline passes, for the JSON admin APIs and the token endpoint's form.
    monkeypatch.setattr(_http, "BODY_SECONDS", 0.5)

    async def stalled() -> AsyncIterator[bytes]:
        yield b"{"
        await asyncio.sleep(60)
        yield b"}"

    admin = api(app, issuer, deployment.admin_key)
    started = time.monotonic()
    answer = await admin.post(
        "/oauth2/admin/users", content=stalled(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["error_description"] == "the body did not arrive in time"
    token = await admin.post(
        "/oauth2/token",
        content=stalled(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert token.status_code == 400
    assert token.json()["error_description"] == "the body did not arrive in time"
    assert time.monotonic() - started < 10
    await admin.aclose()


async def test_roles_that_would_read_as_two_are_refused(
    app: GatewayApp, issuer: str, deployment: Deployment
) -> None:
    admin = api(app, issuer, deployment.admin_key)
    body = {"username": "zed", "password": "a long secret phrase here", "roles": ["viewer admin"]}
    refused = await admin.post("/oauth2/admin/users", json=body)
    assert refused.status_code == 400
    assert "role 'viewer admin'" in refused.json()["error_description"]
    listed = {u["username"] for u in (await admin.get("/oauth2/admin/users")).json()}
    assert "zed" not in listed
    await admin.aclose()
