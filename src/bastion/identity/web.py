"""Wiring of the login and account pages into the authorization server's pages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.credentials._passwords import Passwords
from bastion.credentials.apikey import ApiKeys
from bastion.identity._account import AccountPages
from bastion.identity._admin import UsersAdmin
from bastion.identity._federation_web import FederationPages
from bastion.identity._passkey_web import PasskeyPages
from bastion.identity._store import IdentityStore
from bastion.identity._web import LoginFlow
from bastion.identity.federation import ExternalProvider
from bastion.identity.lockout import LoginThrottle
from bastion.identity.steps import RecoveryCodeStep, TotpStep
from bastion.keyring import Keyring
from bastion.model import Clock, system_clock
from bastion.oauth._http import AdminAuth
from bastion.oauth._pages import Pages
from bastion.oauth.login import PasswordStep
from bastion.store.apikeys import ApiKeyStore
from bastion.store.users import UserStore

if TYPE_CHECKING:  # httpx (and the CLI it imports) loads only where a client is made
    import httpx


def install(
    pages: Pages,
    *,
    engine: AsyncEngine,
    keyring: Keyring,
    passwords: Passwords,
    admin_auth: AdminAuth,
    clock: Clock = system_clock,
    transport: httpx.AsyncBaseTransport | None = None,
) -> IdentityStore:
    """Add ``/oauth2/login[/...]``, ``/oauth2/account[/...]`` and the users admin API
    (``/oauth2/admin/users``) to ``pages``."""
    users = UserStore(engine, clock=clock)
    # The login steps use their own progressive, shared throttle (the gateway's limiter
    # still guards the device page and the gateway's own credentials).
    throttle = LoginThrottle(engine, emit=pages.ctx.emit, clock=clock)
    store = IdentityStore(engine, keyring, clock=clock)
    configured = pages.ctx.config.oauth.login_providers
    providers = {
        p.name: ExternalProvider(
            p, pages.ctx.url(f"/login/external/{p.name}/callback"), transport=transport
        )
        for p in configured
    }
    flow = LoginFlow(
        pages,
        store,
        PasswordStep(users, passwords, throttle),
        TotpStep(store, throttle, clock),
        RecoveryCodeStep(store, throttle),
        providers=[(p.name, p.display_name) for p in configured],
        throttle=throttle,
    )
    api_keys = ApiKeys.from_keyring(
        ApiKeyStore(engine, clock=clock), keyring, pages.ctx.config.api_keys, clock=clock
    )
    account = AccountPages(pages, store, users, passwords, providers=configured,
                           api_keys=api_keys)  # fmt: skip
    federation = FederationPages(pages, flow, account, store, users, providers)
    passkeys = PasskeyPages(pages, flow, account, store, users, throttle)
    admin = UsersAdmin(pages, admin_auth, users, store, passwords)
    pages.extra_routes += [
        *flow.routes(), *passkeys.routes(), *federation.routes(), *account.routes(),
        *admin.routes(),
    ]  # fmt: skip
    return store
