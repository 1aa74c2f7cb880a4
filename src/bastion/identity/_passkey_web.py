"""Passkey endpoints: sign in with a passkey (also as the second step or the step-up) and
add one from the account page. The browser side is ``passkeys.js`` (the only script
bastion serves); it talks JSON to these endpoints with the session's CSRF token in a
header, and bastion checks the ``Origin`` of every call.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.identity._account import AccountPages
from bastion.identity._store import IdentityStore
from bastion.identity._web import LoginFlow
from bastion.identity.passkeys import CHALLENGE_SECONDS, PasskeyError, RelyingParty
from bastion.identity.passkeys import new_user_handle as _new_handle
from bastion.oauth._http import BadInput, client_ip, guarded, json_response, read_body
from bastion.oauth._session import BrowserSession
from bastion.oauth.login import Throttle
from bastion.store.users import UserStore

if TYPE_CHECKING:
    from bastion.oauth._pages import Pages

MAX_BODY = 64 * 1024
REFUSED = {"error": "passkey_refused", "message": "That passkey could not be used."}


class PasskeyPages:
    def __init__(
        self, pages: Pages, flow: LoginFlow, account: AccountPages, store: IdentityStore,
        users: UserStore, throttle: Throttle,
    ) -> None:  # fmt: skip
        self.pages = pages
        self.ctx = pages.ctx
        self.flow = flow
        self.account = account
        self.store = store
        self.users = users
        self.throttle = throttle
        self.rp = RelyingParty(self.ctx.issuer, name="bastion")

    def routes(self) -> list[Route]:
        login, acct = "/oauth2/login/passkey", "/oauth2/account/passkeys"
        return [
            Route(login, guarded(self.login_page), methods=["GET"]),
            Route(f"{login}/options", guarded(self.login_options), methods=["POST"]),
            Route(f"{login}/verify", guarded(self.login_verify), methods=["POST"]),
            Route(acct, guarded(self.add_page), methods=["GET"]),
            Route(f"{acct}/options", guarded(self.add_options), methods=["POST"]),
            Route(f"{acct}/verify", guarded(self.add_verify), methods=["POST"]),
        ]

    # --- plumbing --------------------------------------------------------------------

    async def _json(self, request: Request) -> tuple[BrowserSession | None, dict[str, Any]]:
        """The session and the JSON body, if the call is same-origin with the right CSRF
        token; otherwise ``(None, {})``."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json" or request.headers.get("origin") != self.rp.origin:
            return None, {}
        try:
            body = await read_body(request, MAX_BODY)
        except BadInput:
            return None, {}
        session = await self.pages.session(request)
        if session is None or not session.check_csrf(request.headers.get("x-csrf-token")):
            return None, {}
        try:
            data = json.loads(body)
        except ValueError:
            return None, {}
        return session, data if isinstance(data, dict) else {}

    async def _challenge(self, session: BrowserSession, purpose: str, challenge: bytes) -> None:
        session.data["webauthn"] = {
            "c": base64.urlsafe_b64encode(challenge).decode(),
            "p": purpose,
            "exp": int(self.ctx.clock()) + CHALLENGE_SECONDS,
        }
        await self.pages.sessions.save(session)

    async def _take_challenge(self, session: BrowserSession, purpose: str) -> bytes | None:
        """The pending challenge for ``purpose``, removed at once: each is used once."""
        item = session.data.pop("webauthn", None)
        await self.pages.sessions.save(session)
        if not isinstance(item, dict) or item.get("p") != purpose:
            return None
        if self.ctx.clock() > item.get("exp", 0):
            return None
        return base64.urlsafe_b64decode(item["c"])

    def _page(self, template: str, session: BrowserSession, **values: Any) -> Response:
        return self.pages.page(template, session=session, script=True, **values)

    # --- sign in ---------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        session = await self.pages.session(request) or await self.pages.new_session(request)
        tx = request.query_params.get("tx", "")[:64]
        asked = self.flow.second_factor_for(session, tx)
        back = f"{self.ctx.url('/login')}?{urlencode({'tx': tx})}"
        return self._page("passkey_login.html", session, tx=tx, back=back,
                          subject=asked[0] if asked else None,
                          options=self.ctx.url("/login/passkey/options"),
                          verify=self.ctx.url("/login/passkey/verify"))  # fmt: skip

    async def login_options(self, request: Request) -> Response:
        session, body = await self._json(request)
        if session is None:
            return json_response(400, {"error": "invalid_request"})
        asked = self.flow.second_factor_for(session, str(body.get("tx", ""))[:64])
        allow = await self.store.passkeys(asked[0]) if asked else None
        options, challenge = self.rp.authentication_options(allow)
        await self._challenge(session, "login", challenge)
        return Response(options, media_type="application/json",
                        headers={"Cache-Control": "no-store"})  # fmt: skip

    async def login_verify(self, request: Request) -> Response:
        session, body = await self._json(request)
        if session is None:
            return json_response(400, {"error": "invalid_request"})
        tx = str(body.get("tx", ""))[:64]
        ip = client_ip(request)
        challenge = await self._take_challenge(session, "login")
        if await self.throttle.failures_blocked(account=None, ip=ip) is not None:
            return json_response(429, {"error": "slow_down",
                                       "message": "Too many attempts. Wait a minute."})  # fmt: skip
        credential = json.dumps(body.get("credential"))
        try:
            if challenge is None:
                raise PasskeyError("no pending challenge (used or expired)")
            cred_id, handle = self.rp.credential_id(credential)
            stored = await self.store.passkey(cred_id)
            if stored is None or (handle is not None and handle != stored.user_handle):
                raise PasskeyError("unknown credential")
            asked = self.flow.second_factor_for(session, tx)
            if asked is not None and asked[0] != stored.subject:
                raise PasskeyError("a passkey of another user")
            user = await self.users.get_by_username(stored.subject)
            if user is None or user.disabled:
                raise PasskeyError("user disabled or gone")
            result = self.rp.verify_authentication(credential, challenge, stored)
            if not await self.store.passkey_used(stored.credential_id,
                                                 old_count=stored.sign_count,
                                                 new_count=result.new_sign_count,
                                                 backed_up=result.backed_up):  # fmt: skip
                raise PasskeyError("concurrent use of one assertion")
        except PasskeyError as exc:
            await self.throttle.record_failure(account=None, ip=ip)
            self.ctx.emit({"event": "login_failed", "client_ip": ip, "method": "passkey",
                           "reason": str(exc)[:200]})  # fmt: skip
            return json_response(400, REFUSED)
        kind = "swk" if stored.backup_eligible else "hwk"
        proved = asked[1] if asked else []
        new, url = await self.flow.complete(request, session, stored.subject,
                                            [*proved, kind, "mfa"], tx, "passkey")  # fmt: skip
        response = json_response(200, {"redirect": url})
        self.pages.set_cookie(response, new)
        return response

    # --- add a passkey -----------------------------------------------------------------

    async def add_page(self, request: Request) -> Response:
        session = await self.pages.session(request)
        if session is None or not session.subject:
            return self.pages.redirect(self.ctx.url("/account"))
        if not await self.account.recent(session):
            return await self.account.step_up(session, self.ctx.url("/account/passkeys"))
        return self._page("passkey_add.html", session, account=self.ctx.url("/account"),
                          options=self.ctx.url("/account/passkeys/options"),
                          verify=self.ctx.url("/account/passkeys/verify"))  # fmt: skip

    async def add_options(self, request: Request) -> Response:
        session, _ = await self._json(request)
        if session is None or not session.subject or not await self.account.recent(session):
            return json_response(400, {"error": "invalid_request"})
        existing = await self.store.passkeys(session.subject)
        handle = existing[0].user_handle if existing else _new_handle()
        options, challenge = self.rp.registration_options(
            username=session.subject, user_handle=handle, existing=existing
        )
        await self._challenge(session, "register", challenge)
        session.data["webauthn"]["h"] = handle
        await self.pages.sessions.save(session)
        return Response(options, media_type="application/json",
                        headers={"Cache-Control": "no-store"})  # fmt: skip

    async def add_verify(self, request: Request) -> Response:
        session, body = await self._json(request)
        if session is None or not session.subject or not await self.account.recent(session):
            return json_response(400, {"error": "invalid_request"})
        handle = (session.data.get("webauthn") or {}).get("h", "")
        challenge = await self._take_challenge(session, "register")
        name = " ".join(str(body.get("name", "")).split())[:60] or "Passkey"
        try:
            if challenge is None or not handle:
                raise PasskeyError("no pending challenge (used or expired)")
            reg = self.rp.verify_registration(json.dumps(body.get("credential")), challenge)
            if await self.store.passkey(reg.credential_id) is not None:
                raise PasskeyError("credential already registered")
        except PasskeyError as exc:
            self.ctx.emit({"event": "passkey_refused", "subject": session.subject,
                           "reason": str(exc)[:200]})  # fmt: skip
            return json_response(400, REFUSED)
        await self.store.add_passkey(
            credential_id=reg.credential_id, subject=session.subject, user_handle=handle,
            name=name, public_key=reg.public_key, sign_count=reg.sign_count,
            aaguid=reg.aaguid, transports=reg.transports,
            backup_eligible=reg.backup_eligible, backed_up=reg.backed_up,
        )  # fmt: skip
        self.ctx.emit({"event": "mfa_enrolled", "subject": session.subject, "factor": "passkey"})
        return json_response(200, {"redirect": self.ctx.url("/account")})
