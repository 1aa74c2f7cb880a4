"""``/oauth2/login/external/<name>``: sign in (or, from the account page, link an account)
with an external OpenID provider. An external account signs in to the local user it is
linked to (by subject), or — when the provider says the email is verified and
``link_by_email`` is on — to the one local user with that verified email, which links it.
Nobody is created: an unknown external account is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.identity._account import AccountPages
from bastion.identity._store import IdentityStore
from bastion.identity._web import LoginFlow
from bastion.identity.federation import ExternalProvider, FederationError
from bastion.oauth._http import client_ip, guarded
from bastion.store.users import UserStore

if TYPE_CHECKING:
    from bastion.oauth._pages import Pages

FED_AMR = "fed"  # bastion's amr for "signed in at an external provider" (docs/mfa.md)


class FederationPages:
    def __init__(
        self, pages: Pages, flow: LoginFlow, account: AccountPages, store: IdentityStore,
        users: UserStore, providers: dict[str, ExternalProvider],
    ) -> None:  # fmt: skip
        self.pages = pages
        self.ctx = pages.ctx
        self.flow = flow
        self.account = account
        self.store = store
        self.users = users
        self.providers = providers

    def routes(self) -> list[Route]:
        base = "/oauth2/login/external/{name}"
        return [
            Route(base, guarded(self.start), methods=["GET"]),
            Route(f"{base}/callback", guarded(self.callback), methods=["GET"]),
        ]

    async def start(self, request: Request) -> Response:
        provider = self.providers.get(request.path_params["name"])
        if provider is None:
            return self.pages.error_page(404, "not_found", "no such provider")
        session = await self.pages.session(request) or await self.pages.new_session(request)
        link = request.query_params.get("link") == "1"
        if link:
            if not session.subject:
                return self.pages.redirect(self.ctx.url("/account"))
            if not await self.account.recent(session):
                return await self.account.step_up(session, self.ctx.url("/account"))
        try:
            started = await provider.start(tx=request.query_params.get("tx", "")[:64], link=link)
        except FederationError as exc:
            self.ctx.emit({"event": "federation_failed", "provider": provider.config.name,
                           "reason": str(exc)})  # fmt: skip
            down = f"{provider.config.display_name} cannot be reached"
            return self.pages.error_page(502, "temporarily_unavailable", down)
        session.data["federation"] = started.state
        await self.pages.sessions.save(session)
        return self.pages.redirect(started.url, session)

    async def callback(self, request: Request) -> Response:
        name = request.path_params["name"]
        provider = self.providers.get(name)
        session = await self.pages.session(request)
        remembered = session.data.pop("federation", None) if session is not None else None
        if provider is None or session is None or not isinstance(remembered, dict):
            return self.pages.error_page(400, "invalid_request", "this sign-in has expired")
        await self.pages.sessions.save(session)  # the state is used once
        params = {k: v[:2048] for k, v in request.query_params.items()}
        try:
            if remembered.get("provider") != name:
                raise FederationError("callback for another provider")
            identity = await provider.finish(remembered, params)
        except FederationError as exc:
            self.ctx.emit({"event": "login_failed", "method": f"external:{name}",
                           "client_ip": client_ip(request), "reason": str(exc)[:200]})  # fmt: skip
            return self.pages.error_page(400, "access_denied",
                                         f"signing in with {provider.config.display_name} "
                                         "did not work")  # fmt: skip
        tx = str(remembered.get("tx", ""))
        if remembered.get("link"):
            if not session.subject:
                return self.pages.error_page(400, "invalid_request", "sign in first")
            await self.store.link(identity.issuer, identity.subject, session.subject)
            self.ctx.emit({"event": "external_account_linked", "subject": session.subject,
                           "issuer": identity.issuer})  # fmt: skip
            return self.pages.redirect(self.ctx.url("/account"), session)
        subject = await self.store.linked_subject(identity.issuer, identity.subject)
        if subject is None and provider.config.link_by_email and identity.email_verified:
            subject = await self.store.user_by_verified_email(identity.email or "")
            if subject is not None:
                await self.store.link(identity.issuer, identity.subject, subject)
                self.ctx.emit({"event": "external_account_linked", "subject": subject,
                               "issuer": identity.issuer, "by": "verified_email"})  # fmt: skip
        user = await self.users.get_by_username(subject) if subject else None
        if user is None or user.disabled:
            self.ctx.emit({"event": "login_failed", "method": f"external:{name}",
                           "client_ip": client_ip(request), "reason": "not linked"})  # fmt: skip
            back = f"{self.ctx.url('/login')}?{urlencode({'tx': tx})}"
            return self.pages.page(
                "message.html", 403, title="No account linked",
                text=f"Your {provider.config.display_name} account is not linked to an account "
                "here. Sign in another way, then link it from your account page.",
                link=back, link_text="Back to sign in",
            )  # fmt: skip
        factors = await self.store.factors(user.username)
        if factors.any:  # the local second factor still applies
            session.data["login"] = {"subject": user.username, "amr": [FED_AMR],
                                     "at": int(self.ctx.clock()), "tx": tx}  # fmt: skip
            await self.pages.sessions.save(session)
            return self.pages.redirect(f"{self.ctx.url('/login')}?{urlencode({'tx': tx})}")
        return await self.flow.finish(request, session, user.username, [FED_AMR], tx,
                                      f"external:{name}")  # fmt: skip
