"""The login pages: password, then the second factor when the user has one, and the
step-up that asks a signed-in user for a second factor (RFC 9470) or, for a user who has
none yet, for the password again.

A password that is right but not enough yet is remembered in the (anonymous) session as a
*partial* login for :data:`PARTIAL_SECONDS`; only when every step is done does the
browser get a new, authenticated session id (:meth:`SessionStore.login`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.errors import RateLimited
from bastion.identity._device import device, place
from bastion.identity._store import IdentityStore
from bastion.identity.lockout import LoginThrottle
from bastion.identity.steps import RecoveryCodeStep, TotpStep, assurance
from bastion.oauth._http import client_ip, guarded
from bastion.oauth._session import BrowserSession
from bastion.oauth.login import LoginStep, StepResult

if TYPE_CHECKING:
    from bastion.oauth._pages import Pages

PARTIAL_SECONDS = 300
THROTTLED = "Too many attempts. Wait a minute and try again."


class LoginFlow:
    """``/oauth2/login`` (GET: the right form; POST: one step)."""

    def __init__(
        self,
        pages: Pages,
        store: IdentityStore,
        password: LoginStep,
        totp: TotpStep,
        recovery: RecoveryCodeStep,
        *,
        providers: list[tuple[str, str]] | None = None,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.pages = pages
        self.ctx = pages.ctx
        self.store = store
        self.steps: dict[str, LoginStep] = {
            "password": password,
            "totp": totp,
            "recovery": recovery,
        }
        self.providers = providers or []
        self.throttle = throttle

    def routes(self) -> list[Route]:
        return [Route("/oauth2/login", guarded(self.login), methods=["GET", "POST"])]

    # --- state ---------------------------------------------------------------------

    def partial(self, session: BrowserSession) -> dict[str, Any] | None:
        """The password-done-but-not-finished login in ``session``, if still fresh."""
        item = session.data.get("login")
        if not isinstance(item, dict) or self.ctx.clock() - item.get("at", 0) > PARTIAL_SECONDS:
            return None
        return item

    def second_factor_for(self, session: BrowserSession, tx: str) -> tuple[str, list[str]] | None:
        """Who is asked for a second factor on this page, and what they proved so far."""
        partial = self.partial(session)
        if partial is not None:
            return partial["subject"], list(partial["amr"])
        item = session.pending().get(tx)
        if session.subject and isinstance(item, dict) and item.get("need") == "mfa":
            return session.subject, list(session.amr)
        return None

    # --- pages -----------------------------------------------------------------------

    def password_page(
        self, session: BrowserSession, tx: str, status: int = 200, *, username: str = "",
        message: str = "", reauth: bool = False,
    ) -> Response:  # fmt: skip
        return self.pages.page(
            "login.html", status, session=session, tx=tx, csrf=session.csrf,
            username=username, message=message, action=self.ctx.url("/login"), reauth=reauth,
            passkey_url=f"{self.ctx.url('/login/passkey')}?{urlencode({'tx': tx})}",
            providers=[
                {"name": name, "display_name": shown,
                 "url": f"{self.ctx.url('/login/external/' + name)}?{urlencode({'tx': tx})}"}
                for name, shown in self.providers
            ],
        )  # fmt: skip

    async def mfa_page(
        self, session: BrowserSession, tx: str, subject: str, status: int = 200, *,
        message: str = "", mode: str = "totp",
    ) -> Response:  # fmt: skip
        factors = await self.store.factors(subject)
        if not factors.any:  # nothing to ask for: the password again (a fresh login)
            return self.password_page(session, tx, status, username=subject, reauth=True,
                                      message=message)  # fmt: skip
        if mode == "totp" and not factors.totp:
            mode = "passkey"
        login = self.ctx.url("/login")
        return self.pages.page(
            "mfa.html", status, session=session, tx=tx, csrf=session.csrf, subject=subject,
            factors=factors, mode=mode, message=message, action=login,
            passkey_url=f"{self.ctx.url('/login/passkey')}?{urlencode({'tx': tx})}",
            recovery_url=f"{login}?{urlencode({'tx': tx, 'use': 'recovery'})}",
            totp_url=f"{login}?{urlencode({'tx': tx})}",
        )  # fmt: skip

    async def login(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._post(request)
        session = await self.pages.session(request) or await self.pages.new_session(request)
        tx = request.query_params.get("tx", "")[:64]
        asked = self.second_factor_for(session, tx)
        if asked is not None:
            mode = "recovery" if request.query_params.get("use") == "recovery" else "totp"
            return await self.mfa_page(session, tx, asked[0], mode=mode)
        item = session.pending().get(tx, {})
        hint = item.get("params", {}).get("login_hint", "") if isinstance(item, dict) else ""
        return self.password_page(session, tx, username=hint)

    async def _post(self, request: Request) -> Response:
        session, form = await self.pages.posted(request)
        if session is None:
            return self.pages.error_page(
                400, "invalid_request", "your session has expired; start again"
            )
        tx = form.get("tx", "")[:64]
        step_name = form.get("step", "password")
        step = self.steps.get(step_name)
        if step is None:
            return self.pages.error_page(400, "invalid_request", "unknown login step")
        ip = client_ip(request)
        if step_name == "password":
            return await self._password(request, session, form, tx, step, ip)
        asked = self.second_factor_for(session, tx)
        if asked is None:
            return self.pages.error_page(400, "invalid_request", "this sign-in has expired")
        subject, proved = asked
        try:
            result = await step.verify(form, subject=subject, client_ip=ip)
        except RateLimited:
            return await self.mfa_page(session, tx, subject, 429, message=THROTTLED,
                                       mode=step_name)  # fmt: skip
        if result.subject is None:
            await self.failed(request, subject, step_name)
            return await self.mfa_page(session, tx, subject, 401, message=result.message,
                                       mode=step_name)  # fmt: skip
        return await self.finish(request, session, subject, [*proved, *step.amr], tx, step_name)

    async def _password(
        self, request: Request, session: BrowserSession, form: dict[str, str], tx: str,
        step: LoginStep, ip: str,
    ) -> Response:  # fmt: skip
        try:
            result: StepResult = await step.verify(form, subject=None, client_ip=ip)
        except RateLimited:
            return self.password_page(session, tx, 429, message=THROTTLED)
        if result.subject is None:
            self.ctx.emit({"event": "login_failed", "client_ip": ip})
            username = form.get("username", "")[:255]
            # Recorded under the typed name whether or not such a user exists: the same
            # work (and time) for both, so a failure does not tell (DESIGN.md).
            if username.strip():
                await self.failed(request, username.strip(), "password")
            return self.password_page(session, tx, 401, username=username,
                                      message=result.message)  # fmt: skip
        subject = result.subject
        factors = await self.store.factors(subject)
        if factors.any:
            session.data["login"] = {"subject": subject, "amr": list(step.amr),
                                     "at": int(self.ctx.clock()), "tx": tx}  # fmt: skip
            await self.pages.sessions.save(session)
            return self.pages.redirect(f"{self.ctx.url('/login')}?{urlencode({'tx': tx})}")
        return await self.finish(request, session, subject, list(step.amr), tx, "password")

    # --- the end of every login ----------------------------------------------------

    async def failed(self, request: Request, subject: str, method: str) -> None:
        ua = request.headers.get("user-agent", "")
        ip = client_ip(request)
        where = place(ip, geoip=self.ctx.config.oauth.geoip)
        await self.store.record_event(subject, outcome="failure", method=method, client_ip=ip,
                                      place=where, device=device(ua))  # fmt: skip

    async def finish(
        self, request: Request, session: BrowserSession, subject: str, amr: list[str], tx: str,
        method: str,
    ) -> Response:  # fmt: skip
        new, url = await self.complete(request, session, subject, amr, tx, method)
        return self.pages.redirect(url, new)

    async def complete(
        self, request: Request, session: BrowserSession, subject: str, amr: list[str], tx: str,
        method: str,
    ) -> tuple[BrowserSession, str]:  # fmt: skip
        """A new authenticated session id, the audit event, and where the browser goes
        next (the authorization request, the device page or the account page)."""
        acr, amr_out = assurance(amr)
        ip = client_ip(request)
        ua = request.headers.get("user-agent", "")[:255]
        session.data.pop("login", None)
        new = await self.pages.sessions.login(session, subject=subject, acr=acr, amr=amr_out,
                                              client_ip=ip, user_agent=ua)  # fmt: skip
        where = place(ip, geoip=self.ctx.config.oauth.geoip)
        await self.store.record_event(subject, outcome="success", method=method, client_ip=ip,
                                      place=where, device=device(ua))  # fmt: skip
        if self.throttle is not None:
            await self.throttle.record_success(account=subject, ip=ip)
        self.ctx.emit({"event": "login", "subject": subject, "client_ip": ip,
                       "amr": list(amr_out), "acr": acr})  # fmt: skip
        item = new.pending().get(tx)
        if not isinstance(item, dict):
            return new, self.ctx.url("/account")
        item["fresh"] = True
        kind = item.get("kind")
        if kind == "account":
            new.pending().pop(tx, None)
        await self.pages.sessions.save(new)
        if kind == "device":
            return new, f"{self.ctx.url('/device')}?{urlencode({'tx': tx})}"
        if kind == "account":
            return new, str(item.get("next") or self.ctx.url("/account"))
        return new, f"{self.ctx.url('/authorize/resume')}?{urlencode({'tx': tx})}"
