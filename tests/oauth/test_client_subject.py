"""A client acting for itself (client_credentials) is never a user: its tokens carry
``sub = client:<client_id>`` (RFC 9068 §2.2), and usernames cannot contain ``:``, so a
client registered under a user's name gets none of that user's identity (RFC 9700 §4.15)."""

from __future__ import annotations

import httpx

from tests.oauth._helpers import Clients


async def test_a_client_named_like_a_user_is_not_that_user(
    clients: Clients, http: httpx.AsyncClient
) -> None:
    impostor = await clients.machine(client_id="alice", scope="openid read")
    async with clients.oauth_client(impostor, scope="openid read") as client:
        token = await client.fetch_token("/oauth2/token", grant_type="client_credentials")
        access = token["access_token"]
        seen = (await client.get("/api/x")).json()["headers"]
        assert seen["x-bastion-subject"] == "client:alice"
        assert seen["x-bastion-client"] == "alice"
        assert seen["x-bastion-roles"] == ""  # not alice's ("user")
        info = await http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {access}"})
        assert info.status_code == 401  # no user behind the token: no alice claims
        introspected = await client.introspect_token("/oauth2/introspect", access)
        body = introspected.json()
        assert body["sub"] == "client:alice"
        assert "username" not in body
