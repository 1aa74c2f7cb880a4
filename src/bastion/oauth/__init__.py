"""The authorization server: OAuth 2.1 + OpenID Connect on Authlib's grant machinery.

Endpoints, design and the conformance map are in docs/oauth.md. The gateway mounts it
(:func:`mount`) and accepts its tokens with no extra configuration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.config import Config
from bastion.credentials._passwords import Passwords
from bastion.errors import BastionError
from bastion.gateway._asgi import Trust
from bastion.keyring import Keyring
from bastion.model import Clock, Principal, RequestView, system_clock
from bastion.oauth._context import PREFIX, Emit
from bastion.oauth._http import (
    AuthorizationServerApp,
    build_app,
    failure,
    is_oauth_path,
)
from bastion.oauth._pages import Pages
from bastion.oauth._session import SessionStore
from bastion.oauth.keys import ensure_oauth_keys
from bastion.oauth.login import Throttle
from bastion.oauth.server import OAuthServer
from bastion.tokens import InMemoryRevocations

__all__ = ["AuthorizationServer", "OAuthServer", "ensure_oauth_keys", "is_oauth_path", "mount"]


# Requests that only take access away (RFC 7009 revocation, logout, ending sessions):
# refusing one because the shared rate-limit counters are out would keep access open.
_TAKING_ACCESS_AWAY = frozenset(
    f"{PREFIX}{path}"
    for path in ("/revoke", "/logout", "/account/sessions/end", "/account/sessions/end-all")
)


@dataclass
class AuthorizationServer:
    """The core and its ASGI app, as the gateway runtime holds them."""

    server: OAuthServer
    app: AuthorizationServerApp

    @staticmethod
    def handles(path: str) -> bool:
        """Whether ``path`` is the authorization server's (else the gateway's)."""
        return is_oauth_path(path)

    @staticmethod
    def failure(scope: Any) -> BastionError | None:
        """Why the answer to ``scope`` was a 5xx, when an endpoint said (for the audit)."""
        return failure(scope)

    @staticmethod
    def takes_access_away(path: str) -> bool:
        """Whether ``path`` only revokes or ends access: limited by in-process counters
        while the shared ones are out, rather than refused."""
        return path in _TAKING_ACCESS_AWAY

    async def aclose(self) -> None:
        await self.server.aclose()


async def mount(
    config: Config,
    engine: AsyncEngine,
    keyring: Keyring,
    *,
    revocations: InMemoryRevocations,
    emit: Emit,
    passwords: Passwords,
    throttle: Throttle,
    admin_auth: Callable[[RequestView], Awaitable[Principal]],
    trust: Trust,
    clock: Clock = system_clock,
) -> AuthorizationServer:
    """Build and start the authorization server (keys loaded, revocation mirror running).

    Args:
        config: the deployment's config.
        engine: the database.
        keyring: the deployment's keyring.
        revocations: the gateway's revocation hook (kept in step).
        emit: writes one audit event.
        passwords: the argon2id verifier of the login page.
        throttle: failed-login throttling (the gateway's rate limiter).
        admin_auth: authenticates callers of the admin API (the gateway's authenticators).
        trust: the gateway's trusted proxies (whose ``X-Forwarded-*`` name the client).
        clock: seconds since the epoch.
    """
    server = OAuthServer(config, engine, keyring, revocations=revocations, emit=emit, clock=clock)
    await server.start()
    # Imported here: bastion.identity builds on bastion.oauth's page machinery.
    from bastion.identity.web import install

    sessions = SessionStore(
        engine,
        ttl=config.oauth.session_ttl_seconds,
        idle=config.oauth.session_idle_seconds,
        clock=clock,
    )
    pages = Pages(server, sessions, throttle)
    install(pages, engine=engine, keyring=keyring, passwords=passwords,
            admin_auth=admin_auth, clock=clock)  # fmt: skip
    app = build_app(server, admin_auth, pages, trust)
    return AuthorizationServer(server, app)
