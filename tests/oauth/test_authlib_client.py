"""Authlib's OAuth client for the flows the other files drive by hand: the device grant
(RFC 8628) polled with ``fetch_token``, userinfo with the client's token, and revoking a
refresh token with ``revoke_token`` (the same flows openid-client runs in
tests/interop/test_openid_client.py)."""

from __future__ import annotations

import httpx
import pytest

from bastion.gateway.app import GatewayApp
from tests.oauth._helpers import Clients, browser, hidden, login
from tests.oauth.test_authorization_code import authorize, exchange

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


async def test_device_grant_with_authlibs_client(
    app: GatewayApp, issuer: str, clients: Clients
) -> None:
    reg = await clients.add(grant_types=[DEVICE, "refresh_token"], scope="openid read")
    async with clients.oauth_client(reg, scope="openid read") as client:
        # Authlib's client has no device-authorization helper: a plain authenticated POST.
        start = await client.request(
            "POST", "/oauth2/device_authorization", data={"scope": "openid read"},
            auth=httpx.BasicAuth(reg.client_id, reg.secret or ""), withhold_token=True,
        )  # fmt: skip
        assert start.status_code == 200, start.text
        grant = start.json()
        with pytest.raises(Exception, match="authorization_pending"):
            await client.fetch_token("/oauth2/token", grant_type=DEVICE,
                                     device_code=grant["device_code"])  # fmt: skip
        agent = browser(app, issuer)
        page = await login(agent, await agent.get(grant["verification_uri_complete"]))
        page = await agent.get(page.headers["location"])
        approved = await agent.post("/oauth2/device", data={
            "csrf": hidden(page.text, "csrf"), "user_code": grant["user_code"],
            "decision": "allow"})  # fmt: skip
        assert approved.status_code == 200, approved.text
        # An approved grant is answered at once (no slow_down for this second poll).
        token = dict(await client.fetch_token("/oauth2/token", grant_type=DEVICE,
                                              device_code=grant["device_code"]))  # fmt: skip
        assert token["id_token"]
        assert token["refresh_token"]
        info = await client.get("/oauth2/userinfo")  # the client sends its own token
        assert info.status_code == 200
        assert info.json()["sub"] == "alice"
        api = await client.get("/api/x")
        assert api.json()["headers"]["x-bastion-subject"] == "alice"
        await agent.aclose()


async def test_revoking_a_refresh_token_with_authlibs_client(
    app: GatewayApp, issuer: str, clients: Clients
) -> None:
    reg = await clients.web()
    query, verifier, agent = await authorize(app, issuer, clients, reg, scope="openid read")
    token = await exchange(clients, reg, query, verifier)
    async with clients.oauth_client(reg) as client:
        revoked = await client.revoke_token("/oauth2/revoke", token["refresh_token"],
                                            token_type_hint="refresh_token")  # fmt: skip
        assert revoked.status_code == 200
        with pytest.raises(Exception, match="invalid_grant"):
            await client.refresh_token("/oauth2/token", refresh_token=token["refresh_token"])
        # RFC 7009 §2.1: the access tokens of that grant go with it.
        info = await client.introspect_token("/oauth2/introspect", token["access_token"])
        assert info.json() == {"active": False}
    await agent.aclose()
