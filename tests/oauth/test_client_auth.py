"""Failed client authentication (RFC 6749 §2.3, §5.2) at every endpoint that takes it:
one ``invalid_client`` answer whatever failed; a 401 with a Basic challenge only to a
client that used the ``Authorization`` header, else 400 without one; every failure in
the audit log with its cause and the client's address (relayed by a trusted proxy here).

Issue 15: a wrong secret in the body got 401 + ``WWW-Authenticate`` (openid-client then
never sees ``invalid_client``), an unknown client and a wrong secret had different
descriptions (one a Python list of methods), and nothing was audited."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson
import pytest

from bastion.gateway.app import GatewayApp
from tests._deploy import Deployment
from tests.identity._flows import relayed
from tests.oauth._helpers import Clients

ENDPOINTS = {
    "token": ("/oauth2/token", {"grant_type": "client_credentials"}),
    "revocation": ("/oauth2/revoke", {"token": "t"}),
    "introspection": ("/oauth2/introspect", {"token": "t"}),
    "par": ("/oauth2/par", {"response_type": "code"}),
    "device_authorization": ("/oauth2/device_authorization", {"scope": "read"}),
}
CLIENT_IP = "203.0.113.20"
ANSWER = {"error": "invalid_client", "error_description": "client authentication failed"}


def header(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def cases(clients: Clients) -> list[tuple[str, dict[str, str], dict[str, str], str]]:
    """(name, headers, form, audited reason) of each way to fail."""
    basic = await clients.machine()  # client_secret_basic
    post = await clients.machine(token_endpoint_auth_method="client_secret_post")
    assert basic.secret is not None
    return [
        ("header, wrong secret", header(basic.client_id, "wrong"), {}, "bad_client_credentials"),
        ("header, unknown client", header("nobody", "x"), {}, "unknown_client"),
        ("body, wrong secret", {}, {"client_id": post.client_id, "client_secret": "wrong"},
         "bad_client_credentials"),
        ("body, unknown client", {}, {"client_id": "nobody", "client_secret": "x"},
         "unknown_client"),
        # the right secret by a method the client is not registered for
        ("body, not its method", {}, {"client_id": basic.client_id, "client_secret": basic.secret},
         "bad_client_credentials"),
        ("no client at all", {}, {}, "no_client_id"),
    ]  # fmt: skip


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
async def test_failed_client_authentication_is_one_answer_and_audited(
    app: GatewayApp, issuer: str, clients: Clients, deployment: Deployment, endpoint: str
) -> None:
    path, params = ENDPOINTS[endpoint]
    seen: list[tuple[str, int, Any, str | None]] = []
    reasons = []
    async with relayed(app, issuer, CLIENT_IP, proto="https") as http:
        for name, headers, form, reason in await cases(clients):
            answer = await http.post(path, data={**params, **form}, headers=headers)
            seen.append((name, answer.status_code, answer.json(),
                         answer.headers.get("www-authenticate")))  # fmt: skip
            reasons.append(reason)
    for name, status, body, challenge in seen:
        assert body == ANSWER, name
        if name.startswith("header"):
            assert (status, challenge) == (401, 'Basic realm="bastion"'), name
        else:
            assert (status, challenge) == (400, None), name
    assert app.runtime is not None
    app.runtime.audit.flush()
    lines = [orjson.loads(line) for line in deployment.audit_log.read_bytes().splitlines()]
    audited = [line for line in lines if line.get("event") == "client_auth_failed"]
    assert [(a["endpoint"], a["reason"], a["client_ip"]) for a in audited] == [
        (endpoint, reason, CLIENT_IP) for reason in reasons
    ]
    assert "wrong" not in deployment.audit_log.read_text()  # no secret in the log


async def test_a_good_client_still_authenticates_both_ways(
    clients: Clients, http: httpx.AsyncClient
) -> None:
    basic = await clients.machine()
    post = await clients.machine(token_endpoint_auth_method="client_secret_post")
    assert basic.secret is not None
    assert post.secret is not None
    grant = {"grant_type": "client_credentials"}
    by_header = await http.post(
        "/oauth2/token", data=grant, headers=header(basic.client_id, basic.secret)
    )
    by_body = await http.post(
        "/oauth2/token", data={**grant, "client_id": post.client_id, "client_secret": post.secret}
    )
    assert (by_header.status_code, by_body.status_code) == (200, 200)
