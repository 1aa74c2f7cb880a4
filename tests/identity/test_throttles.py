"""Every throttle spares an account's owner alike (bastion.oauth.login.Throttle): someone
failing an account's credential from elsewhere blocks it everywhere but where its owner
succeeded lately. The same scenario at each place a credential is checked — a gateway
route, the admin API, the login form — through a trusted proxy (clients relayed in
``X-Forwarded-For``, over TLS at the proxy, since Basic needs it). Issue 15: the admin
API locked its owner out. The gateway and the admin API share one throttle, so an owner
known at one is spared at the other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from bastion.gateway.app import GatewayApp
from tests._deploy import PASSWORD, Deployment, make_deployment
from tests.identity._flows import basic, password_login, relayed

OWNER, ATTACKER, ELSEWHERE = "198.51.100.10", "203.0.113.66", "192.0.2.77"
Attempt = Callable[[httpx.AsyncClient, str], Awaitable[int]]


@pytest.fixture
async def deployment(tmp_path: Path, upstream: str) -> Deployment:
    limits = {
        "per_ip": "100000/minute",
        "per_principal": "100000/minute",
        "failed_auth_per_account": "3/minute",
        "failed_auth_per_ip": "100/minute",
    }
    return await make_deployment(tmp_path / "d", upstream, rate_limits=limits)


async def gateway_route(agent: httpx.AsyncClient, password: str) -> int:
    return (await agent.get("/api/admin/x", headers=basic("root", password))).status_code


async def admin_api(agent: httpx.AsyncClient, password: str) -> int:
    return (await agent.get("/oauth2/admin/users", headers=basic("root", password))).status_code


async def login_form(agent: httpx.AsyncClient, password: str) -> int:
    agent.cookies.clear()
    status = (await password_login(agent, "root", password)).status_code
    return 200 if status == 303 else status  # signed in


DOORS: dict[str, Attempt] = {"gateway": gateway_route, "admin": admin_api, "login": login_form}


@pytest.mark.parametrize(
    ("known_at", "attacked_at"),
    [
        ("gateway", "gateway"),
        ("admin", "admin"),
        ("login", "login"),
        ("gateway", "admin"),  # one throttle behind both
        ("admin", "gateway"),
    ],
)
async def test_others_failing_an_account_do_not_lock_its_owner_out(
    app: GatewayApp, issuer: str, known_at: str, attacked_at: str
) -> None:
    known, attacked = DOORS[known_at], DOORS[attacked_at]
    owner = relayed(app, issuer, OWNER, proto="https")
    attacker = relayed(app, issuer, ATTACKER, proto="https")
    newcomer = relayed(app, issuer, ELSEWHERE, proto="https")
    assert await known(owner, PASSWORD) == 200  # the owner, as usual
    tries = [await attacked(attacker, f"guess {n}") for n in range(8)]
    assert tries[0] == 401
    assert tries[-1] == 429  # the account's budget is spent ...
    assert await attacked(newcomer, PASSWORD) == 429  # ... so it is refused elsewhere,
    assert await attacked(owner, PASSWORD) == 200  # but not where its owner signs in
    for agent in (owner, attacker, newcomer):
        await agent.aclose()
