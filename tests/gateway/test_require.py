"""``require()``, the FastAPI dependency, in an app served by a real uvicorn: its refusals
are answered and audited as the decision core answers and audits its own (challenge,
code, title, one audit line per request saying deny, why and the status), and on a
route the middleware leaves public it authenticates the request itself."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import Depends, FastAPI, Request

from bastion.config import AuthMethod
from bastion.gateway.middleware import BastionMiddleware, install_error_handler, require
from bastion.gateway.runtime import Runtime
from bastion.model import Principal
from tests._deploy import PASSWORD, Deployment
from tests.gateway._uvicorn import serving

Need = Any  # a require() dependency, as Depends() takes it


def make_app(runtime: Runtime) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BastionMiddleware, runtime=runtime)
    install_error_handler(app)

    def who(principal: Principal) -> dict[str, str]:
        return {"subject": principal.subject, "credential": principal.credential.value}

    def route(path: str, need: Need) -> None:
        async def endpoint(principal: Principal = Depends(need)) -> dict[str, str]:  # noqa: B008
            return who(principal)

        app.add_api_route(path, endpoint, methods=["GET"])

    route("/api/keys-only", require(methods=["api_key"]))
    route("/api/deployers", require(roles=["deployer"]))
    route("/api/orders", require(scopes=["orders:read"]))
    route("/public/whoami", require())
    route("/public/keys-only", require(methods=["api_key"]))

    @app.get("/public/hello")
    async def hello(request: Request) -> dict[str, str]:
        return who(request.state.principal)

    return app


@pytest.fixture
async def base(runtime: Runtime) -> AsyncIterator[str]:
    async with serving(make_app(runtime)) as url:
        yield url


def basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_lines(runtime: Runtime, deployment: Deployment) -> dict[str, dict[str, Any]]:
    """The audit log's decision lines by request id; one per request."""
    runtime.audit.flush()
    lines = [orjson.loads(x) for x in deployment.audit_log.read_bytes().splitlines()]
    decisions = [line for line in lines if "outcome" in line]
    by_id = {line["request_id"]: line for line in decisions}
    assert len(by_id) == len(decisions)  # never two lines for one request
    return by_id


def audited(lines: dict[str, dict[str, Any]], response: httpx.Response) -> tuple[Any, ...]:
    line = lines[response.headers["x-request-id"]]
    return line["outcome"], line["status"], line["reason"], line["principal"], line["credential"]


async def test_refusals_are_answered_like_the_cores_and_audited_as_denials(
    base: str, runtime: Runtime, deployment: Deployment
) -> None:
    key = {"X-API-Key": deployment.api_key}
    async with httpx.AsyncClient(base_url=base) as client:
        # A valid credential of a method the endpoint does not take: 401 with the
        # challenge of the method it does take (before: no WWW-Authenticate at all).
        wrong_method = await client.get("/api/keys-only", headers=basic("alice"))
        api_key_challenge = runtime.gateway.authenticators[AuthMethod.API_KEY].challenge()
        assert wrong_method.status_code == 401
        assert wrong_method.headers.get_list("www-authenticate") == [api_key_challenge]
        assert wrong_method.json()["code"] == "unauthenticated"
        # A role refusal is the core's missing_role (before: 403 "Insufficient scope").
        no_role = await client.get("/api/deployers", headers=key)
        core_no_role = await client.get("/api/admin/x", headers=key)  # the core's refusal
        assert core_no_role.status_code == 403
        assert "www-authenticate" not in no_role.headers
        for body in (no_role.json(), core_no_role.json()):
            assert (body["status"], body["title"], body["code"]) == (403, "Forbidden", "forbidden")
        # A scope refusal carries the core's RFC 6750 challenge, naming the scope needed.
        read_only = bearer(deployment.jwt(scope="read"))
        no_scope = await client.get("/api/orders", headers=read_only)
        core_no_scope = await client.get("/api/reports/x", headers=read_only)
        assert no_scope.status_code == core_no_scope.status_code == 403
        assert no_scope.json()["title"] == core_no_scope.json()["title"] == "Insufficient scope"
        assert no_scope.headers["www-authenticate"] == core_no_scope.headers[
            "www-authenticate"
        ].replace("reports:read", "orders:read")
        allowed = await client.get("/api/keys-only", headers=key)
        assert allowed.json() == {"subject": "alice", "credential": "api_key"}
    lines = audit_lines(runtime, deployment)
    assert audited(lines, wrong_method) == (
        "deny",
        401,
        "credential_method_not_allowed",
        "alice",
        "basic",
    )
    assert audited(lines, no_role) == ("deny", 403, "missing_role", "alice", "api_key")
    assert audited(lines, core_no_role) == ("deny", 403, "missing_role", "alice", "api_key")
    assert audited(lines, no_scope) == ("deny", 403, "missing_scope", "alice", "jwt")
    assert audited(lines, allowed) == ("allow", 200, "ok", "alice", "api_key")


async def test_require_authenticates_on_a_public_route(
    base: str, runtime: Runtime, deployment: Deployment
) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        # The middleware lets anyone through; the endpoint's require() authenticates.
        anyone = await client.get("/public/hello")
        assert anyone.json() == {"subject": "anonymous", "credential": "anonymous"}
        token = await client.get("/public/whoami", headers=bearer(deployment.jwt()))
        assert token.json() == {"subject": "alice", "credential": "jwt"}  # before: 401
        user = await client.get("/public/whoami", headers=basic("root"))
        assert user.json() == {"subject": "root", "credential": "basic"}
        # Without a credential, or with a bad one: 401 with every method's challenge.
        nothing = await client.get("/public/whoami")
        assert nothing.status_code == 401
        assert len(nothing.headers.get_list("www-authenticate")) == len(
            runtime.gateway.authenticators
        )
        forged = await client.get("/public/whoami", headers=bearer(deployment.jwt() + "x"))
        assert forged.status_code == 401
        assert forged.json()["code"] == "invalid_token"
        # methods= still holds: a valid JWT is not an API key.
        not_a_key = await client.get("/public/keys-only", headers=bearer(deployment.jwt()))
        assert not_a_key.status_code == 401
        key = await client.get("/public/keys-only", headers={"X-API-Key": deployment.api_key})
        assert key.json() == {"subject": "alice", "credential": "api_key"}
    lines = audit_lines(runtime, deployment)
    assert audited(lines, anyone) == ("allow", 200, "ok", "anonymous", "anonymous")
    assert audited(lines, token) == ("allow", 200, "ok", "alice", "jwt")
    assert audited(lines, user) == ("allow", 200, "ok", "root", "basic")
    assert audited(lines, nothing)[:3] == ("deny", 401, "no_credentials")
    assert audited(lines, forged)[:2] == ("deny", 401)
    assert audited(lines, not_a_key)[:3] == ("deny", 401, "no_credentials")
    assert audited(lines, key) == ("allow", 200, "ok", "alice", "api_key")


async def test_without_the_error_handler_a_refusal_is_still_the_problem_not_a_500(
    runtime: Runtime, deployment: Deployment
) -> None:
    app = FastAPI()  # install_error_handler(app) not called
    app.add_middleware(BastionMiddleware, runtime=runtime)

    @app.get("/api/deployers")
    async def deployers(
        principal: Principal = Depends(require(roles=["deployer"])),  # noqa: B008
    ) -> dict[str, str]:
        return {"subject": principal.subject}

    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        refused = await client.get("/api/deployers", headers={"X-API-Key": deployment.api_key})
    assert refused.status_code == 403  # before: 500 from the server's error middleware
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "forbidden"
    lines = audit_lines(runtime, deployment)
    assert audited(lines, refused) == ("deny", 403, "missing_role", "alice", "api_key")


async def test_guessing_passwords_through_require_on_a_public_route_is_throttled(
    base: str,
) -> None:
    # The failures count as on any route: past failed_auth_per_account (10/minute) the
    # account is throttled (as the core throttles its own routes).
    wrong = {"Authorization": "Basic " + base64.b64encode(b"root:guess").decode()}
    async with httpx.AsyncClient(base_url=base) as client:
        statuses = [
            (await client.get("/public/whoami", headers=wrong)).status_code for _ in range(10)
        ]
        assert statuses == [401] * 10
        throttled = await client.get("/public/whoami", headers=wrong)
        assert throttled.status_code == 429
        assert throttled.json()["code"] == "rate_limited"
        assert "retry-after" in throttled.headers


def test_an_unknown_method_is_refused_when_the_app_is_defined() -> None:
    with pytest.raises(ValueError, match="apikey"):
        require(methods=["apikey"])
