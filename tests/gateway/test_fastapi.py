"""The embedded front door in a FastAPI app: middleware + require() dependency."""

from __future__ import annotations

import base64

import httpx
from fastapi import Depends, FastAPI

from bastion.gateway.middleware import BastionMiddleware, install_error_handler, require
from bastion.gateway.runtime import Runtime
from bastion.model import Principal
from tests._deploy import PASSWORD, Deployment


def make_app(runtime: Runtime) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BastionMiddleware, runtime=runtime)
    install_error_handler(app)

    @app.get("/api/me")
    def me(principal: Principal = Depends(require())) -> dict[str, str]:  # noqa: B008
        return {"subject": principal.subject, "credential": principal.credential.value}

    @app.get("/api/orders")
    def orders(
        principal: Principal = Depends(require(scopes=["orders:read"], methods=["jwt"])),  # noqa: B008
    ) -> dict[str, str]:
        return {"subject": principal.subject}

    @app.get("/api/admin/ops")
    def ops(principal: Principal = Depends(require(roles=["admin"]))) -> dict[str, str]:  # noqa: B008
        return {"subject": principal.subject}

    return app


async def test_require_checks_scopes_methods_and_roles(
    runtime: Runtime, deployment: Deployment
) -> None:
    transport = httpx.ASGITransport(app=make_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        key = {"X-API-Key": deployment.api_key}
        me = await client.get("/api/me", headers=key)
        assert me.json() == {"subject": "alice", "credential": "api_key"}
        # the middleware refuses before the app runs
        assert (await client.get("/api/me")).status_code == 401
        # API key lacks the method and the scope
        wrong_method = await client.get("/api/orders", headers=key)
        assert wrong_method.status_code == 401
        assert wrong_method.headers["content-type"] == "application/problem+json"
        jwt_no_scope = {"Authorization": f"Bearer {deployment.jwt(scope='read')}"}
        no_scope = await client.get("/api/orders", headers=jwt_no_scope)
        assert no_scope.status_code == 403
        assert no_scope.json()["code"] == "insufficient_scope"
        assert 'scope="orders:read"' in no_scope.headers["www-authenticate"]
        jwt_scope = {"Authorization": f"Bearer {deployment.jwt(scope='orders:read')}"}
        assert (await client.get("/api/orders", headers=jwt_scope)).status_code == 200
        basic = "Basic " + base64.b64encode(f"root:{PASSWORD}".encode()).decode()
        admin = await client.get("/api/admin/ops", headers={"Authorization": basic})
        assert admin.status_code == 200
        assert admin.headers["x-request-id"]
