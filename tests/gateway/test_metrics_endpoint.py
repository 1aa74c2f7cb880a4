"""``/metrics`` as a deployment serves it: open to ``system.metrics_allow`` clients only,
judged on the client's address (through a front proxy, the client's, not the proxy's),
and with label values that do not tell which accounts exist."""

from __future__ import annotations

import base64

import httpx
import orjson

from bastion.credentials._passwords import hash_password
from bastion.gateway.app import GatewayApp
from bastion.store import open_store
from tests._deploy import PASSWORD, Deployment


async def metrics_status(app: GatewayApp, peer: str, **headers: str) -> int:
    transport = httpx.ASGITransport(app=app, client=(peer, 5555))
    sent = {k.replace("_", "-"): v for k, v in headers.items()}
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        return (await client.get("/metrics", headers=sent)).status_code


async def test_metrics_judge_the_client_not_the_proxy(
    app: GatewayApp, deployment: Deployment
) -> None:
    # The default deployment: metrics_allow and trusted_proxies are both loopback, so a
    # front proxy on the same machine is a trusted peer that is also "allowed".
    assert await metrics_status(app, "127.0.0.1") == 200  # a local scraper, directly
    assert await metrics_status(app, "127.0.0.1", x_forwarded_for="127.0.0.1") == 200
    # The proxy relays a client from elsewhere: that client is judged.
    assert await metrics_status(app, "127.0.0.1", x_forwarded_for="203.0.113.5") == 404
    assert await metrics_status(app, "127.0.0.1", x_real_ip="203.0.113.5") == 404
    # A client that is no proxy cannot claim loopback.
    assert await metrics_status(app, "203.0.113.5", x_forwarded_for="127.0.0.1") == 404
    assert await metrics_status(app, "203.0.113.5", x_real_ip="127.0.0.1") == 404


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_metrics_do_not_tell_unknown_users_from_wrong_passwords(
    app: GatewayApp, deployment: Deployment
) -> None:
    async with open_store(deployment.config) as ctx:
        await ctx.users.add("dora", hash_password(PASSWORD), roles=["user"])
        await ctx.users.disable("dora")
    attempts = {
        "wrong password": basic("root", "not the password"),
        "unknown user": basic("nobody-here", "not the password"),
        "disabled user": basic("dora", PASSWORD),
    }
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        answers = {}
        for name, headers in attempts.items():
            before = (await client.get("/metrics")).text
            answer = await client.get("/api/x", headers=headers)
            after = (await client.get("/metrics")).text
            answers[name] = (answer.status_code, answer.json()["code"], changed(before, after))
    # The client and the metrics see the same for both; the series names no account fact.
    assert answers["wrong password"] == answers["unknown user"] == answers["disabled user"]
    status, code, series = answers["unknown user"]
    assert (status, code) == (401, "invalid_token")
    assert series == ['reason="bad_credentials"']
    # The audit log, server-side, keeps the detail.
    assert app.runtime is not None
    app.runtime.audit.flush()
    lines = [orjson.loads(line) for line in deployment.audit_log.read_bytes().splitlines()]
    assert [x["reason"] for x in lines if x.get("outcome") == "deny"] == [
        "bad_password",
        "unknown_user",
        "disabled",
    ]


def changed(before: str, after: str) -> list[str]:
    """The reason labels of the decision series that grew between two scrapes."""

    def counts(text: str) -> dict[str, float]:
        out = {}
        for line in text.splitlines():
            if line.startswith("bastion_decisions_total{") and 'outcome="deny"' in line:
                labels, _, value = line.rpartition(" ")
                out[labels] = float(value)
        return out

    old, new = counts(before), counts(after)
    grown = [labels for labels, value in new.items() if value > old.get(labels, 0.0)]
    return [part for labels in grown for part in labels.split(",") if part.startswith("reason=")]
