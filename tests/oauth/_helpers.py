"""Shared helpers for the authorization-server tests: register clients, drive the
browser flow (login form, consent) over HTTP, PKCE values."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

with warnings.catch_warnings():
    # Authlib 1.9.10 deprecates its httpx (v0.28) client in favour of httpx2; bastion's
    # tests use the httpx the rest of the suite uses.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

from bastion.gateway.app import GatewayApp
from bastion.oauth.clients import record_from_metadata
from bastion.oauth.server import OAuthServer
from tests._deploy import PASSWORD

REDIRECT = "https://app.example/cb"
CODE_GRANTS = ["authorization_code", "refresh_token"]


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


@dataclass
class Registered:
    client_id: str
    secret: str | None
    metadata: dict[str, Any]


class Clients:
    def __init__(self, server: OAuthServer, app: GatewayApp, issuer: str) -> None:
        self.server = server
        self.app = app
        self.issuer = issuer

    async def add(self, **metadata: Any) -> Registered:
        data: dict[str, Any] = {"client_name": "test"}
        data.update(metadata)
        created = await self.server.ctx.clients.store.create(record_from_metadata(data))
        self.server.ctx.clients.invalidate(created.record.client_id)
        return Registered(created.record.client_id, created.secret, data)

    async def machine(self, **metadata: Any) -> Registered:
        data = {"grant_types": ["client_credentials"], "scope": "read reports:read"}
        data.update(metadata)
        return await self.add(**data)

    async def web(self, **metadata: Any) -> Registered:
        data = {
            "grant_types": CODE_GRANTS,
            "redirect_uris": [REDIRECT],
            "post_logout_redirect_uris": ["https://app.example/bye"],
            "scope": "openid profile email offline_access read",
        }
        data.update(metadata)
        return await self.add(**data)

    def oauth_client(self, reg: Registered, **kwargs: Any) -> AsyncOAuth2Client:
        transport = httpx.ASGITransport(app=self.app, client=("127.0.0.1", 50001))
        return AsyncOAuth2Client(
            client_id=reg.client_id,
            client_secret=reg.secret,
            transport=transport,
            base_url=self.issuer,
            **kwargs,
        )


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name!r} in page"
    return match.group(1)


async def login(
    browser: httpx.AsyncClient,
    page: httpx.Response,
    username: str = "alice",
    password: str = PASSWORD,
) -> httpx.Response:
    """Submit the login form on ``page`` (a redirect to it or the form itself)."""
    if page.status_code in (302, 303):
        page = await browser.get(page.headers["location"])
    assert page.status_code == 200, page.text
    return await browser.post(
        "/oauth2/login",
        data={
            "csrf": hidden(page.text, "csrf"),
            "tx": hidden(page.text, "tx"),
            "username": username,
            "password": password,
        },
    )


async def consent(
    browser: httpx.AsyncClient, page: httpx.Response, decision: str = "allow"
) -> httpx.Response:
    assert page.status_code == 200, page.text
    return await browser.post(
        "/oauth2/consent",
        data={
            "csrf": hidden(page.text, "csrf"),
            "tx": hidden(page.text, "tx"),
            "decision": decision,
        },
    )


_HAND_OFF = re.compile(r'<meta http-equiv="refresh" content="0;url=([^"]+)">')


def next_location(response: httpx.Response) -> str:
    """Where bastion sends the browser next: a redirect's ``Location``, or the address
    of a hand-off page (the answer to a form post that leaves for the client: a page
    under ``form-action 'self'`` that moves on by ``<meta http-equiv="refresh">``)."""
    if response.status_code in (302, 303):
        return response.headers["location"]
    found = _HAND_OFF.search(response.text) if response.status_code == 200 else None
    assert found, (response.status_code, response.text[:500])
    csp = response.headers["content-security-policy"]
    assert "form-action 'self';" in csp, csp  # the client's origin is never allowed
    target = html.unescape(found.group(1))
    assert f'href="{html.escape(target)}"' in response.text  # the link, for when it stays
    return target


async def follow_to_client(browser: httpx.AsyncClient, response: httpx.Response) -> dict[str, str]:
    """Follow bastion's own redirects until one leaves for the client; return its query."""
    for _ in range(6):
        location = next_location(response)
        if location.startswith(REDIRECT) or not location.startswith(str(browser.base_url)):
            return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        response = await browser.get(location)
        if (
            response.status_code == 200
            and 'action="' in response.text
            and "/consent" in response.text
        ):
            response = await consent(browser, response)
    raise AssertionError("too many redirects")


def browser(app: GatewayApp, issuer: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50002))
    return httpx.AsyncClient(transport=transport, base_url=issuer)
