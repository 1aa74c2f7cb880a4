"""The login pages, the device page and the admin API behind a trusted proxy: each client
is judged by its own address (relayed in ``X-Forwarded-For``) and scheme (relayed in
``X-Forwarded-Proto``), never by the proxy's; a client that is no proxy cannot claim
another address or TLS. Issue 15: 21 failed sign-ins from one client locked every user
out (throttle key ``ip:127.0.0.1``), audit events said 127.0.0.1, and the admin API took
Basic over plain HTTP from anywhere because the proxy's peer address is loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bastion.gateway.app import GatewayApp
from bastion.identity.lockout import ADDRESS
from tests._deploy import PASSWORD, Deployment, make_deployment
from tests.identity._flows import PROXY, basic, direct, password_login, relayed
from tests.oauth._helpers import hidden, login


@pytest.fixture
async def deployment(tmp_path: Path, upstream: str) -> Deployment:
    limits = {"per_ip": "100000/minute", "per_principal": "100000/minute",
              "failed_auth_per_ip": "3/minute"}  # fmt: skip
    return await make_deployment(tmp_path / "d", upstream, rate_limits=limits)


def audit_events(app: GatewayApp, deployment: Deployment, event: str) -> list[dict[str, Any]]:
    assert app.runtime is not None
    app.runtime.audit.flush()
    lines = [orjson.loads(line) for line in deployment.audit_log.read_bytes().splitlines()]
    return [line for line in lines if line.get("event") == event]


async def test_one_client_failing_sign_ins_locks_out_only_itself(
    app: GatewayApp, issuer: str
) -> None:
    guesser = relayed(app, issuer, "203.0.113.50")
    # Password spraying: a new username each time, so only the address's count grows.
    sprayed = [(await password_login(guesser, f"user{n}", "guess")).status_code
               for n in range(ADDRESS.free + 1)]  # fmt: skip
    assert sprayed == [401] * (ADDRESS.free + 1)
    assert (await password_login(guesser, "alice", PASSWORD)).status_code == 429
    # Everyone else behind the same proxy signs in as usual.
    owner = relayed(app, issuer, "198.51.100.7")
    assert (await password_login(owner, "alice", PASSWORD)).status_code == 303
    # A client that is no proxy cannot spread its failures over made-up addresses.
    spoofer = direct(app, issuer, "192.0.2.66")
    for n in range(ADDRESS.free + 1):
        spoofer.headers["X-Forwarded-For"] = f"10.9.{n}.1"
        assert (await password_login(spoofer, f"other{n}", "guess")).status_code == 401
    assert (await password_login(spoofer, "alice", PASSWORD)).status_code == 429
    for agent in (guesser, owner, spoofer):
        await agent.aclose()


async def test_audit_and_account_history_name_the_client(
    app: GatewayApp, issuer: str, deployment: Deployment
) -> None:
    agent = relayed(app, issuer, "203.0.113.8")
    assert (await password_login(agent, "alice", "wrong")).status_code == 401
    assert (await password_login(agent, "alice", PASSWORD)).status_code == 303
    spoofer = direct(app, issuer, "192.0.2.66", x_forwarded_for="203.0.113.99")
    assert (await password_login(spoofer, "alice", "wrong")).status_code == 401
    assert [e["client_ip"] for e in audit_events(app, deployment, "login")] == ["203.0.113.8"]
    failed = [e["client_ip"] for e in audit_events(app, deployment, "login_failed")]
    assert failed == ["203.0.113.8", "192.0.2.66"]
    account = await agent.get("/oauth2/account")
    assert account.status_code == 200
    # The sessions and the sign-in history show the client, never the proxy.
    assert account.text.count("<td>203.0.113.8</td>") >= 2
    assert f"<td>{PROXY}</td>" not in account.text
    for a in (agent, spoofer):
        await a.aclose()


async def wrong_user_code(agent: httpx.AsyncClient) -> int:
    page = await agent.get("/oauth2/device")
    assert page.status_code == 200, page.text
    answer = await agent.post(
        "/oauth2/device",
        data={"csrf": hidden(page.text, "csrf"), "user_code": "BCDF-GHJK", "decision": "allow"},
    )
    return answer.status_code


async def signed_in(agent: httpx.AsyncClient) -> httpx.AsyncClient:
    done = await login(agent, await agent.get("/oauth2/device"))
    assert done.status_code == 303, done.text
    return agent


async def test_device_page_throttles_each_client_behind_the_proxy(
    app: GatewayApp, issuer: str
) -> None:
    # failed_auth_per_ip is 3/minute here: the fourth wrong user code is refused.
    guesser = await signed_in(relayed(app, issuer, "203.0.113.60"))
    assert [await wrong_user_code(guesser) for _ in range(4)] == [400, 400, 400, 429]
    other = await signed_in(relayed(app, issuer, "198.51.100.60"))
    assert await wrong_user_code(other) == 400  # its own count, not the proxy's
    spoofer = await signed_in(direct(app, issuer, "192.0.2.60"))
    for n in range(3):
        spoofer.headers["X-Forwarded-For"] = f"10.8.{n}.1"
        assert await wrong_user_code(spoofer) == 400
    assert await wrong_user_code(spoofer) == 429
    for agent in (guesser, other, spoofer):
        await agent.aclose()


@pytest.mark.parametrize("path", ["/oauth2/admin/users", "/oauth2/admin/clients"])
async def test_admin_api_refuses_basic_over_plain_http_from_afar(
    app: GatewayApp, issuer: str, path: str
) -> None:
    root = basic("root", PASSWORD)
    # Relayed from a remote client that reached the proxy over plain HTTP: refused.
    async with relayed(app, issuer, "203.0.113.9") as plain:
        refused = await plain.get(path, headers=root)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_request"
    assert "TLS" in refused.json()["error_description"]
    # The same client over TLS at the proxy, or a local one: accepted.
    async with relayed(app, issuer, "203.0.113.9", proto="https") as tls:
        assert (await tls.get(path, headers=root)).status_code == 200
    async with direct(app, issuer, "127.0.0.1") as local:
        assert (await local.get(path, headers=root)).status_code == 200
    # A remote client cannot claim TLS or loopback for itself.
    spoof = {"x_forwarded_proto": "https", "x_forwarded_for": "127.0.0.1"}
    async with direct(app, issuer, "203.0.113.9", **spoof) as spoofer:
        claimed = await spoofer.get(path, headers=root)
    assert claimed.status_code == 401
    assert claimed.json()["error"] == "invalid_request"
