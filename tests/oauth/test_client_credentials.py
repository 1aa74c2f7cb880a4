"""client_credentials, introspection, revocation and the gateway accepting (then refusing)
bastion's own tokens, driven by Authlib's own OAuth client."""

from __future__ import annotations

import base64

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from bastion.oauth.clients import InvalidClientMetadata
from tests._deploy import Deployment
from tests.oauth._helpers import Clients


async def test_client_credentials_token_is_an_rfc9068_jwt(
    clients: Clients, http: httpx.AsyncClient, issuer: str
) -> None:
    reg = await clients.machine()
    async with clients.oauth_client(reg, scope="read") as client:
        token = await client.fetch_token("/oauth2/token", grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "read"
    assert "refresh_token" not in token
    jwks = (await http.get("/.well-known/jwks.json")).json()
    decoded = jwt.decode(token["access_token"], KeySet.import_key_set(jwks))
    assert decoded.header["typ"] == "at+jwt"
    claims = decoded.claims
    assert claims["iss"] == issuer
    assert claims["aud"] == issuer
    assert claims["sub"] == f"client:{reg.client_id}"  # never a username (no ":" in those)
    assert claims["client_id"] == reg.client_id
    assert claims["scope"] == "read"
    assert claims["exp"] - claims["iat"] == 600
    assert len(claims["jti"]) >= 16


async def test_gateway_accepts_own_token_then_refuses_it_after_revocation(
    clients: Clients, http: httpx.AsyncClient
) -> None:
    reg = await clients.machine()
    async with clients.oauth_client(reg, scope="read reports:read") as client:
        token = await client.fetch_token("/oauth2/token", grant_type="client_credentials")
        access = token["access_token"]
        allowed = await http.get("/api/reports/q", headers={"Authorization": f"Bearer {access}"})
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["headers"]["x-bastion-client"] == reg.client_id
        revoked = await client.revoke_token("/oauth2/revoke", access, "access_token")
        assert revoked.status_code == 200
    refused = await http.get("/api/reports/q", headers={"Authorization": f"Bearer {access}"})
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]


async def test_scope_not_allowed_is_invalid_scope(clients: Clients) -> None:
    reg = await clients.machine()
    async with clients.oauth_client(reg, scope="admin") as client:
        with pytest.raises(Exception, match="invalid_scope"):
            await client.fetch_token("/oauth2/token", grant_type="client_credentials")


async def test_wrong_secret_and_unknown_client_are_invalid_client(
    clients: Clients, http: httpx.AsyncClient
) -> None:
    reg = await clients.machine()
    for user, secret in ((reg.client_id, "wrong"), ("nobody", "x")):
        basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
        response = await http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        )
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert response.headers["www-authenticate"].startswith("Basic ")


async def test_introspection_requires_an_authenticated_client(
    clients: Clients, http: httpx.AsyncClient, issuer: str
) -> None:
    reg = await clients.machine()
    rs = await clients.machine(may_introspect=True)
    async with clients.oauth_client(reg, scope="read") as client:
        token = await client.fetch_token("/oauth2/token", grant_type="client_credentials")
    anonymous = await http.post("/oauth2/introspect", data={"token": token["access_token"]})
    assert anonymous.status_code in (400, 401)
    assert anonymous.json()["error"] == "invalid_client"
    async with clients.oauth_client(rs) as resource_server:
        active = await resource_server.introspect_token("/oauth2/introspect", token["access_token"])
        body = active.json()
        assert body["active"] is True
        assert body["client_id"] == reg.client_id
        assert body["scope"] == "read"
        assert body["iss"] == issuer
        garbage = await resource_server.introspect_token("/oauth2/introspect", "not-a-token")
        assert garbage.json() == {"active": False}


async def test_opaque_tokens_resolve_by_introspection_and_at_the_gateway(
    clients: Clients, http: httpx.AsyncClient
) -> None:
    reg = await clients.machine(access_token_format="opaque")
    async with clients.oauth_client(reg, scope="read reports:read") as client:
        token = await client.fetch_token("/oauth2/token", grant_type="client_credentials")
        access = token["access_token"]
        assert access.startswith("bat_")
        assert access.count(".") == 0
        own = await client.introspect_token("/oauth2/introspect", access)
        assert own.json()["active"] is True
        headers = {"Authorization": f"Bearer {access}"}
        assert (await http.get("/api/reports/x", headers=headers)).status_code == 200
        await client.revoke_token("/oauth2/revoke", access)
        assert (await http.get("/api/reports/x", headers=headers)).status_code == 401
        after = await client.introspect_token("/oauth2/introspect", access)
        assert after.json() == {"active": False}


async def test_public_client_cannot_use_client_credentials(clients: Clients) -> None:
    with pytest.raises(InvalidClientMetadata) as caught:
        await clients.add(grant_types=["client_credentials"], token_endpoint_auth_method="none")
    assert caught.value.detail == "a public client cannot use client_credentials"


async def test_admin_api_manages_clients_for_admins_only(
    http: httpx.AsyncClient, deployment: Deployment
) -> None:
    admin = {"X-API-Key": deployment.admin_key}
    assert (await http.get("/oauth2/admin/clients")).status_code == 401
    user = await http.get("/oauth2/admin/clients", headers={"X-API-Key": deployment.api_key})
    assert user.status_code == 403
    created = await http.post(
        "/oauth2/admin/clients",
        headers=admin,
        json={"client_name": "api-made", "grant_types": ["client_credentials"], "scope": "read"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    client_id, secret = body["client_id"], body["client_secret"]
    token = await http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                            auth=(client_id, secret))  # fmt: skip
    assert token.status_code == 200
    listed = (await http.get("/oauth2/admin/clients", headers=admin)).json()
    assert client_id in [c["client_id"] for c in listed]
    assert secret not in str(listed)
    rotated = await http.post(f"/oauth2/admin/clients/{client_id}/secret", headers=admin)
    assert rotated.status_code == 200
    old = await http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                          auth=(client_id, secret))  # fmt: skip
    assert old.status_code == 401  # the old secret stops at once on this instance
    bad = await http.post("/oauth2/admin/clients", headers=admin,
                          json={"grant_types": ["password"]})  # fmt: skip
    assert bad.json()["error"] == "invalid_client_metadata"
    gone = await http.delete(f"/oauth2/admin/clients/{client_id}", headers=admin)
    assert gone.status_code == 204
    again = await http.delete(f"/oauth2/admin/clients/{client_id}", headers=admin)
    assert again.status_code == 404
