"""Drive the login and account pages over HTTP (in-process) like a browser would."""

from __future__ import annotations

import base64
import re
import time

import httpx

from bastion.gateway.app import GatewayApp
from bastion.identity import totp
from tests._deploy import PASSWORD
from tests.oauth._helpers import hidden

PROXY = "127.0.0.1"  # the deployment's default forwarded.trusted_proxies: loopback


def relayed(app: GatewayApp, issuer: str, client: str, proto: str = "http") -> httpx.AsyncClient:
    """A client at ``client`` whose requests a trusted proxy (nginx on loopback) relays."""
    transport = httpx.ASGITransport(app=app, client=(PROXY, 40000))
    headers = {"X-Forwarded-For": client, "X-Forwarded-Proto": proto}
    return httpx.AsyncClient(transport=transport, base_url=issuer, headers=headers)


def direct(app: GatewayApp, issuer: str, peer: str, **headers: str) -> httpx.AsyncClient:
    """A client at ``peer`` talking to bastion itself, sending whatever headers it likes."""
    transport = httpx.ASGITransport(app=app, client=(peer, 40001))
    sent = {k.replace("_", "-"): v for k, v in headers.items()}
    return httpx.AsyncClient(transport=transport, base_url=issuer, headers=sent)


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def secret_of(page: str) -> str:
    match = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page)
    assert match, "no TOTP secret on the page"
    return match.group(1).replace(" ", "")


def codes_of(page: str) -> list[str]:
    return re.findall(r"<li><code>([a-z0-9-]{14})</code></li>", page)


async def password_login(
    agent: httpx.AsyncClient, username: str = "alice", password: str = PASSWORD, tx: str = ""
) -> httpx.Response:
    page = await agent.get("/oauth2/login" + (f"?tx={tx}" if tx else ""))
    assert page.status_code == 200, page.text
    return await agent.post("/oauth2/login", data={
        "csrf": hidden(page.text, "csrf"), "tx": hidden(page.text, "tx"), "step": "password",
        "username": username, "password": password,
    })  # fmt: skip


async def second_factor(
    agent: httpx.AsyncClient, location: str, code: str, step: str = "totp"
) -> httpx.Response:
    page = await agent.get(location)
    assert page.status_code == 200, page.text
    assert "Verify it\u2019s you" in page.text
    return await agent.post("/oauth2/login", data={
        "csrf": hidden(page.text, "csrf"), "tx": hidden(page.text, "tx"), "step": step,
        "code": code,
    })  # fmt: skip


async def enrol_totp(agent: httpx.AsyncClient) -> tuple[str, list[str]]:
    """Enrol TOTP from the account page (the session must be recent); returns the
    secret and the recovery codes shown once."""
    page = await agent.get("/oauth2/account/totp")
    assert page.status_code == 200, page.text
    secret = secret_of(page.text)
    done = await agent.post("/oauth2/account/totp", data={
        "csrf": hidden(page.text, "csrf"), "code": next_code(secret),
    })  # fmt: skip
    assert done.status_code == 200, done.text
    return secret, codes_of(done.text)


_USED: dict[str, set[int]] = {}


def next_code(secret: str) -> str:
    """A valid code of a time step not used yet (now, or the next step: the server
    accepts one step either side)."""
    now = time.time()
    used = _USED.setdefault(secret, set())
    for moment in (now, now + 30):
        step = totp.step_at(moment)
        if all(step > u for u in used):
            used.add(step)
            return totp.totp(secret, moment)
    raise AssertionError("no unused code in the window")
