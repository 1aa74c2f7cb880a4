"""The account page: password, TOTP, recovery codes, passkeys, sessions and recent
sign-in activity. Changing the password and enrolling or removing a factor need a recent
second factor (``oauth.recent_mfa_seconds``; a user with no second factor yet proves the
password again instead): the page sends the user through the step-up login first.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.config import LoginProviderConfig
from bastion.credentials._passwords import Passwords
from bastion.credentials.apikey import ApiKeys
from bastion.identity import totp
from bastion.identity._device import device
from bastion.identity._store import IdentityStore
from bastion.identity.policy import password_problems
from bastion.oauth._context import ACR_MFA
from bastion.oauth._http import guarded
from bastion.oauth._session import BrowserSession
from bastion.store._db import now_utc
from bastion.store.apikeys import ApiKeyRecord
from bastion.store.users import UserStore

if TYPE_CHECKING:
    from bastion.oauth._pages import Pages


class AccountPages:
    def __init__(
        self, pages: Pages, store: IdentityStore, users: UserStore, passwords: Passwords,
        *, providers: list[LoginProviderConfig] | None = None, api_keys: ApiKeys | None = None,
    ) -> None:  # fmt: skip
        self.providers = providers or []
        self.api_keys = api_keys
        self.pages = pages
        self.ctx = pages.ctx
        self.store = store
        self.users = users
        self.passwords = passwords

    def routes(self) -> list[Route]:
        a = "/oauth2/account"
        return [
            Route(a, guarded(self.account), methods=["GET"]),
            Route(f"{a}/password", guarded(self.change_password), methods=["POST"]),
            Route(f"{a}/totp", guarded(self.totp), methods=["GET", "POST"]),
            Route(f"{a}/totp/remove", guarded(self.remove_totp), methods=["POST"]),
            Route(f"{a}/recovery-codes", guarded(self.recovery_codes), methods=["POST"]),
            Route(f"{a}/passkeys/remove", guarded(self.remove_passkey), methods=["POST"]),
            Route(f"{a}/sessions/end", guarded(self.end_session), methods=["POST"]),
            Route(f"{a}/sessions/end-all", guarded(self.end_all), methods=["POST"]),
            Route(f"{a}/external/unlink", guarded(self.unlink), methods=["POST"]),
            Route(f"{a}/api-keys", guarded(self.create_key), methods=["POST"]),
            Route(f"{a}/api-keys/revoke", guarded(self.revoke_key), methods=["POST"]),
        ]

    # --- helpers -------------------------------------------------------------------

    def _url(self, path: str = "") -> str:
        return self.ctx.url(f"/account{path}")

    async def _to_login(self, session: BrowserSession, next_url: str, *, mfa: bool) -> Response:
        """Send the browser through the login (or the step-up) and back to ``next_url``."""
        item = {"kind": "account", "next": next_url}
        if mfa:
            item["need"] = "mfa"
        tx = session.add_pending(item)
        await self.pages.sessions.save(session)
        return self.pages.redirect(f"{self.ctx.url('/login')}?{urlencode({'tx': tx})}", session)

    async def recent(self, session: BrowserSession) -> bool:
        """A second factor within ``recent_mfa_seconds`` (a fresh password if none yet)."""
        fresh = (
            session.auth_time is not None
            and self.ctx.clock() - session.auth_time <= self.ctx.config.oauth.recent_mfa_seconds
        )
        if not fresh or session.subject is None:
            return False
        return session.acr == ACR_MFA or not (await self.store.factors(session.subject)).any

    async def step_up(self, session: BrowserSession, next_url: str) -> Response:
        return await self._to_login(session, next_url, mfa=True)

    async def _signed_in(self, request: Request) -> BrowserSession | None:
        session = await self.pages.session(request)
        return session if session is not None and session.subject else None

    def _event(self, kind: str, subject: str, **fields: object) -> None:
        self.ctx.emit({"event": kind, "subject": subject, **fields})

    # --- the page --------------------------------------------------------------------

    async def account(self, request: Request, *, message: str = "", status: int = 200,
                      error: str = "") -> Response:  # fmt: skip
        session = await self.pages.session(request)
        if session is None or not session.subject:
            session = session or await self.pages.new_session(request)
            return await self._to_login(session, self._url(), mfa=False)
        subject = session.subject
        factors = await self.store.factors(subject)
        sessions = await self.pages.sessions.of_subject(subject)
        linked = {issuer for issuer, _ in await self.store.links(subject)}
        external = [
            {"name": p.name, "display_name": p.display_name, "linked": p.issuer in linked,
             "link": f"{self.ctx.url('/login/external/' + p.name)}?link=1"}
            for p in self.providers
        ]  # fmt: skip
        return self.pages.page(
            "account.html", status, session=session, csrf=session.csrf, subject=subject,
            factors=factors, passkeys=await self.store.passkeys(subject),
            sessions=[(s, device(s.user_agent), s.id_hash == session.id_hash) for s in sessions],
            events=await self.store.events(subject, 10), message=message, error=error,
            mfa=session.acr == ACR_MFA, base=self._url(),
            passkeys_url=self.ctx.url("/account/passkeys"), external=external,
            keys=await self._keys(subject), scopes=self.ctx.config.oauth.scopes,
        )  # fmt: skip

    # --- password ------------------------------------------------------------------

    async def change_password(self, request: Request) -> Response:
        session, form = await self.pages.posted(request)
        if session is None or not session.subject:
            return self.pages.error_page(400, "invalid_request", "your session has expired")
        if not await self.recent(session):
            return await self.step_up(session, self._url())
        subject = session.subject
        user = await self.users.get_by_username(subject)
        new = form.get("new_password", "")
        if user is None or not await self.passwords.verify(
            user.password_hash, form.get("current_password", "")[:1024]
        ):
            return await self.account(request, status=400, error="The current password is wrong.")
        if new != form.get("confirm_password"):
            return await self.account(request, status=400, error="The new passwords differ.")
        problems = password_problems(new, username=subject)
        if problems:
            return await self.account(request, status=400, error="; ".join(problems).capitalize())
        await self.users.set_password(subject, await self.passwords.hash(new))
        ended = await self.pages.sessions.delete_of_subject(subject, keep=session.id_hash)
        self._event("password_changed", subject, other_sessions_ended=ended)
        return await self.account(request, message="Your password is changed; other sessions "
                                  "are signed out.")  # fmt: skip

    # --- TOTP ------------------------------------------------------------------------

    async def totp(self, request: Request) -> Response:
        if request.method == "GET":
            session = await self._signed_in(request)
            if session is None:
                return self.pages.redirect(self._url())
            if not await self.recent(session):
                return await self.step_up(session, self._url("/totp"))
            secret = totp.new_secret()
            await self.store.start_totp(session.subject or "", secret)
            return self._enrol_page(session, secret)
        session, form = await self.pages.posted(request)
        if session is None or not session.subject:
            return self.pages.error_page(400, "invalid_request", "your session has expired")
        if not await self.recent(session):
            return await self.step_up(session, self._url("/totp"))
        subject = session.subject
        record = await self.store.totp(subject)
        if record is None or record.confirmed:
            return self.pages.redirect(self._url())
        step = totp.matching_step(record.secret, form.get("code", "")[:16], self.ctx.clock())
        if step is None or not await self.store.use_totp_step(subject, step, confirm=True):
            wrong = "That code is not right. Try the next one."
            return self._enrol_page(session, record.secret, status=400, message=wrong)
        self._event("mfa_enrolled", subject, factor="totp")
        codes = None
        if (await self.store.factors(subject)).recovery_codes == 0:
            codes = await self.store.new_recovery_codes(subject)
        return self.pages.page("codes.html", session=session, codes=codes,
                               title="Authenticator app added", account=self._url())  # fmt: skip

    def _enrol_page(
        self, session: BrowserSession, secret: str, *, status: int = 200, message: str = ""
    ) -> Response:
        issuer = urlsplit(self.ctx.issuer).hostname or "bastion"
        uri = totp.provisioning_uri(secret, account=session.subject or "", issuer=issuer)
        grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
        return self.pages.page(
            "totp.html", status, session=session, csrf=session.csrf, qr=totp.qr_svg(uri),
            secret=grouped, message=message, action=self._url("/totp"), account=self._url(),
        )  # fmt: skip

    async def remove_totp(self, request: Request) -> Response:
        session, _ = await self.pages.posted(request)
        if session is None or not session.subject:
            return self.pages.error_page(400, "invalid_request", "your session has expired")
        if not await self.recent(session):
            return await self.step_up(session, self._url())
        await self.store.remove_totp(session.subject)
        self._event("mfa_removed", session.subject, factor="totp")
        return await self.account(request, message="The authenticator app is removed.")

    async def recovery_codes(self, request: Request) -> Response:
        session, _ = await self.pages.posted(request)
        if session is None or not session.subject:
            return self.pages.error_page(400, "invalid_request", "your session has expired")
        if not await self.recent(session):
            return await self.step_up(session, self._url())
        codes = await self.store.new_recovery_codes(session.subject)
        self._event("recovery_codes_replaced", session.subject)
        return self.pages.page("codes.html", session=session, codes=codes,
                               title="New recovery codes", account=self._url())  # fmt: skip

    async def remove_passkey(self, request: Request) -> Response:
        session, form = await self.pages.posted(request)
        if session is None or not session.subject:
            return self.pages.error_page(400, "invalid_request", "your session has expired")
        if not await self.recent(session):
            return await self.step_up(session, self._url())
        removed = await self.store.remove_passkey(session.subject, form.get("credential", ""))
        if removed:
            self._event("mfa_removed", session.subject, factor="passkey")
        return await self.account(request, message="The passkey is removed." if removed else "")

    async def unlink(self, request: Request) -> Response:
        session, form = await self.pages.posted(request)
        if session is None or not session.subject:
            return self.pages.error_page(400, "invalid_request", "your session has expired")
        if not await self.recent(session):
            return await self.step_up(session, self._url())
        for p in self.providers:
            if p.name == form.get("provider"):
                await self.store.unlink(session.subject, p.issuer)
                self._event("external_account_unlinked", session.subject, issuer=p.issuer)
        return self.pages.redirect(self._url())

    # --- personal API keys ----------------------------------------------------------

    async def _keys(self, subject: str) -> list[tuple[ApiKeyRecord, str]]:
        if self.api_keys is None:
            return []
        now = now_utc(self.ctx.clock)
        records = await self.api_keys.store.list(subject=subject)
        return [(r, r.status(now)) for r in records if r.status(now) != "revoked"]

    async def create_key(self, request: Request) -> Response:
        """A personal API key (shown once): needs a recent second factor."""
        session, form = await self.pages.posted(request)
        if session is None or not session.subject or self.api_keys is None:
            return self.pages.error_page(400, "invalid_request", "your session has expired")
        if not await self.recent(session):
            return await self.step_up(session, self._url())
        name = " ".join(form.get("name", "").split())[:60] or "Personal key"
        offered = set(self.ctx.config.oauth.scopes)
        scopes = sorted(s for s in form.get("scopes", "").split() if s in offered)
        days = form.get("days", "90")
        expires = now_utc(self.ctx.clock) + timedelta(days=int(days) if days.isdigit() else 90)
        issued = await self.api_keys.issue(name=name, subject=session.subject, scopes=scopes,
                                           expires_at=min(expires, now_utc(self.ctx.clock)
                                                          + timedelta(days=365)))  # fmt: skip
        self._event("api_key_created", session.subject, key_id=issued.record.key_id)
        return self.pages.page("api_key.html", session=session, key=issued.key,
                               record=issued.record, account=self._url())  # fmt: skip

    async def revoke_key(self, request: Request) -> Response:
        session, form = await self.pages.posted(request)
        if session is None or not session.subject or self.api_keys is None:
            return self.pages.error_page(400, "invalid_request", "your session has expired")
        key_id = form.get("key_id", "")
        owned = {r.key_id for r, _ in await self._keys(session.subject)}
        if key_id in owned:  # only the user's own keys
            await self.api_keys.revoke(key_id)
            self._event("api_key_revoked", session.subject, key_id=key_id)
        return self.pages.redirect(self._url())

    # --- sessions ------------------------------------------------------------------

    async def end_session(self, request: Request) -> Response:
        session, form = await self.pages.posted(request)
        if session is None or not session.subject:
            return self.pages.error_page(400, "invalid_request", "your session has expired")
        for other in await self.pages.sessions.of_subject(session.subject):
            if other.public_id == form.get("session") and other.id_hash != session.id_hash:
                await self.pages.sessions.delete(other)
                self._event("session_ended", session.subject)
        return self.pages.redirect(self._url())

    async def end_all(self, request: Request) -> Response:
        """Sign out everywhere, this browser included."""
        session, _ = await self.pages.posted(request)
        if session is None or not session.subject:
            return self.pages.error_page(400, "invalid_request", "your session has expired")
        ended = await self.pages.sessions.delete_of_subject(session.subject)
        # Apps signed in as this user lose their refresh tokens too, and the access tokens
        # issued with them stop working at the gateway at once.
        revoked = await self.ctx.grants.revoke_subject(session.subject)
        await self.ctx.revocations.applied(revoked)
        self._event(
            "signed_out_everywhere", session.subject, sessions=ended, access_tokens=len(revoked)
        )
        text = f"{ended} session(s) ended, this one included; apps must sign you in again."
        response = self.pages.page("message.html", title="Signed out everywhere", text=text)
        self.pages.clear_cookie(response)
        return response
