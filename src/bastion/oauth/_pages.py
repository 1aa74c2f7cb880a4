"""The browser side: authorization endpoint, consent, device verification, logout, and
the page machinery the login and account pages (:mod:`bastion.identity`) share.

Pages are Jinja2 templates with autoescape, no inline script or style and a strict CSP
(only the passkey pages load one script, from bastion itself); every form carries the
session's CSRF token and posts are checked against the ``Origin`` header; the session
cookie is described in ``_session``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from bastion.oauth._authlib import HttpInput, OAuthResponse
from bastion.oauth._context import PAR_URN, PREFIX
from bastion.oauth._endpoints import normalize_user_code
from bastion.oauth._http import BadInput, client_ip, guarded, http_input, to_response
from bastion.oauth._session import BrowserSession, SessionStore
from bastion.oauth._store import Owner
from bastion.oauth.login import Throttle
from bastion.oauth.server import OAuthServer

STATIC = "/oauth2/static"
STATIC_CSS = f"{STATIC}/bastion.css"
_STATIC_TYPES = {
    "bastion.css": "text/css",
    "passkeys.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
ACR_VALUES_MFA = "urn:bastion:acr:mfa"


class Pages:
    """The HTML endpoints; ``extra_routes`` (the login and account pages) are added by
    :func:`bastion.oauth.mount`."""

    def __init__(self, server: OAuthServer, sessions: SessionStore, throttle: Throttle) -> None:
        self.server = server
        self.throttle = throttle
        self.ctx = server.ctx
        self.sessions = sessions
        self.extra_routes: list[Route] = []
        secure = server.ctx.config.oauth.secure_cookies
        if secure is None:
            secure = server.ctx.issuer.startswith("https://")
        self.secure = secure
        self.cookie_name = "__Host-bastion-session" if secure else "bastion-session"
        self.env = Environment(
            loader=PackageLoader("bastion.oauth", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        loader = self.env.loader
        if loader is None:  # pragma: no cover - set just above
            raise RuntimeError("no template loader")
        self.static = {
            name: loader.get_source(self.env, name)[0].encode() for name in _STATIC_TYPES
        }

    def routes(self) -> list[Route]:
        p = PREFIX
        return [
            Route(f"{p}/authorize", guarded(self.authorize), methods=["GET", "POST"]),
            Route(f"{p}/authorize/resume", guarded(self.resume), methods=["GET"]),
            Route(f"{p}/consent", guarded(self.consent), methods=["POST"]),
            Route(f"{p}/device", guarded(self.device), methods=["GET", "POST"]),
            Route(f"{p}/logout", guarded(self.logout), methods=["GET", "POST"]),
            Route(f"{STATIC}/{{name}}", self.static_file, methods=["GET"]),
            *self.extra_routes,
        ]

    # --- rendering ---------------------------------------------------------------

    def page(
        self, template: str, status: int = 200, *, session: BrowserSession | None = None,
        script: bool = False, **values: Any,
    ) -> HTMLResponse:  # fmt: skip
        scripts = [f"{STATIC}/passkeys.js"] if script else []
        body = self.env.get_template(template).render(
            css=STATIC_CSS, scripts=scripts, csrf_meta=session.csrf if session else "", **values
        )
        # Only the passkey pages run a script: bastion's own file, fetching bastion only.
        run = "script-src 'self'; connect-src 'self'; " if script else ""
        headers = {
            # form-action 'self' on every page, the client's origin never: a post whose
            # answer leaves for the client answers with hand_off() instead of a redirect.
            "Content-Security-Policy": (
                f"default-src 'none'; {run}style-src 'self'; img-src 'self' data:; "
                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            ),
            "X-Frame-Options": "DENY",
            # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on
            # form posts, which the Origin check must refuse. Nothing leaves for another site.
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Opener-Policy": "same-origin",
            "Cross-Origin-Resource-Policy": "same-origin",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
        }
        if self.ctx.issuer.startswith("https://"):
            headers["Strict-Transport-Security"] = "max-age=31536000"
        response = HTMLResponse(body, status_code=status, headers=headers)
        self.set_cookie(response, session)
        return response

    def error_page(self, status: int, error: str, description: str = "") -> HTMLResponse:
        return self.page("error.html", status, error=error, description=description)

    def set_cookie(self, response: Response, session: BrowserSession | None) -> None:
        if session is not None and session.cookie is not None:
            response.set_cookie(
                self.cookie_name,
                session.cookie,
                max_age=self.ctx.config.oauth.session_ttl_seconds,
                path="/",
                secure=self.secure,
                httponly=True,
                samesite="lax",
            )

    def redirect(self, url: str, session: BrowserSession | None = None) -> Response:
        response = RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
        self.set_cookie(response, session)
        return response

    def client_redirect(
        self, result: OAuthResponse, session: BrowserSession | None = None, *,
        hand_off: bool = False,
    ) -> Response:  # fmt: skip
        """The authorization server's answer for the client; with ``hand_off``, a redirect
        is answered with :meth:`hand_off` (the answer ends a form post's navigation)."""
        location = result.location
        if hand_off and location is not None and result.status in (302, 303):
            return self.hand_off(location, session)
        response = to_response(result)
        self.set_cookie(response, session)
        return response

    def hand_off(self, location: str, session: BrowserSession | None = None) -> HTMLResponse:
        """A page that sends the browser on to ``location`` (validated exactly by the
        authorization server) by ``<meta http-equiv="refresh">``, in place of a redirect.

        Chromium applies the posting page's ``form-action`` to every redirect after a form
        post. Naming the client's origin there would not do (its callback may redirect on;
        an external provider's form is under the provider's CSP): this page ends the
        post's navigation and the refresh starts one no form-action governs (docs/oauth.md).
        """
        return self.page(
            "continue.html", session=session, location=location,
            destination=_origin(location) or location.split(":", 1)[0] + ":",
        )  # fmt: skip

    async def static_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC_TYPES:
            return Response(status_code=404)
        return Response(
            self.static[name],
            media_type=_STATIC_TYPES[name],
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    # --- sessions ----------------------------------------------------------------

    async def session(self, request: Request) -> BrowserSession | None:
        """The browser's live session, if any."""
        return await self.sessions.load(request.cookies.get(self.cookie_name))

    async def new_session(self, request: Request) -> BrowserSession:
        ip = client_ip(request)
        return await self.sessions.create(
            client_ip=ip, user_agent=request.headers.get("user-agent", "")[:255]
        )

    _session = session

    async def _owner(self, session: BrowserSession | None) -> Owner | None:
        if session is None or session.subject is None:
            return None
        return await self.ctx.grants.owner(
            session.subject, auth_time=session.auth_time, acr=session.acr, amr=session.amr
        )

    def _auth_http(self) -> HttpInput:
        return HttpInput("GET", self.ctx.url("/authorize"))

    # --- the authorization endpoint (RFC 6749 §3.1, OIDC Core §3.1.2) -------------

    async def authorize(self, request: Request) -> Response:
        try:
            http = await http_input(request, self.ctx.issuer)
        except BadInput as exc:
            return self.error_page(400, "invalid_request", str(exc))
        repeated = http.repeated()
        if repeated is not None:
            return self.error_page(400, "invalid_request", f"parameter {repeated!r} repeated")
        params = http.params()
        posted = request.method == "POST"  # a client's form (OIDC Core §3.1.2.1)
        uri = params.get("request_uri", "")
        pushed = uri.startswith(PAR_URN)
        if pushed:
            resolved, why = await self.server.resolve_pushed(params)
            if resolved is None:
                return self.error_page(400, "invalid_request_uri", why)
            params = resolved
        elif uri or "request" in params:
            # OIDC Core §6: request objects (by value or by reference) are not supported.
            code = "request_uri_not_supported" if uri else "request_not_supported"
            return await self._unsupported(params, code, hand_off=posted)
        return await self._continue(
            params, pushed, await self._session(request), fresh=False, hand_off=posted
        )

    async def _unsupported(self, params: dict[str, str], code: str, *, hand_off: bool) -> Response:
        rest = {k: v for k, v in params.items() if k not in ("request", "request_uri")}
        check = await self.server.check_authorization(self._auth_http(), rest, None, pushed=True)
        if check.client is None and check.redirect is None:
            return self.error_page(400, code, "request objects are not supported")
        error = OAuth2Error(error=code, description="request objects are not supported")
        return self.client_redirect(
            await self.server.error_redirect(self._auth_http(), rest, error), hand_off=hand_off
        )

    async def resume(self, request: Request) -> Response:
        session = await self._session(request)
        tx_id = request.query_params.get("tx", "")
        item = session.pending().get(tx_id) if session is not None else None
        if session is None or item is None or item.get("kind") != "authorize":
            return self.error_page(400, "invalid_request", "this sign-in has expired; start again")
        fresh = bool(item.pop("fresh", False))
        session.pending().pop(tx_id)
        await self.sessions.save(session)
        # Resuming follows a sign-in: a form post (or an external provider's) started it.
        return await self._continue(
            item["params"], bool(item["pushed"]), session, fresh=fresh, hand_off=True
        )

    async def _continue(
        self, params: dict[str, str], pushed: bool, session: BrowserSession | None, *,
        fresh: bool, hand_off: bool,
    ) -> Response:  # fmt: skip
        http = self._auth_http()
        owner = await self._owner(session)
        check = await self.server.check_authorization(http, params, owner, pushed=pushed)
        if check.redirect is not None:
            return self.client_redirect(check.redirect, session, hand_off=hand_off)
        if check.error is not None or check.client is None:
            return self.error_page(400, check.error or "invalid_request", check.description)
        prompts = set(params.get("prompt", "").split())
        max_age = params.get("max_age")
        if max_age is not None and not max_age.isdigit():
            from authlib.oauth2.rfc6749 import InvalidRequestError

            error = InvalidRequestError("max_age must be a non-negative integer")
            return self.client_redirect(
                await self.server.error_redirect(http, params, error), session, hand_off=hand_off
            )
        too_old = (
            max_age is not None
            and owner is not None
            and owner.auth_time is not None
            and self.ctx.clock() - owner.auth_time > int(max_age)
        )
        # RFC 9470 §4 / OIDC Core §3.1.2.1: a client (or a gateway's challenge) asking for
        # acr_values=urn:bastion:acr:mfa gets the second factor asked for when the
        # session has only a password; the acr achieved is what the tokens carry.
        step_up = (
            owner is not None
            and not fresh
            and ACR_VALUES_MFA in params.get("acr_values", "").split()
            and owner.acr != ACR_VALUES_MFA
        )
        if (
            owner is None
            or step_up
            or (not fresh and (prompts & {"login", "select_account"} or too_old))
        ):
            if "none" in prompts:
                result = await self.server.error_redirect(http, params, LoginRequiredError())
                return self.client_redirect(result, session, hand_off=hand_off)
            session = session or await self.sessions.create()
            item = {"kind": "authorize", "params": params, "pushed": pushed}
            if step_up and not (prompts & {"login", "select_account"} or too_old):
                item["need"] = "mfa"
            tx = session.add_pending(item)
            await self.sessions.save(session)
            return self.redirect(f"{self.ctx.url('/login')}?{urlencode({'tx': tx})}", session)
        if session is None:  # pragma: no cover - an owner always comes from a session
            return self.error_page(400, "invalid_request", "no session")
        client = check.client
        granted = await self.ctx.grants.consented(owner.subject, client.client_id)
        if not client.record.skip_consent and (
            "consent" in prompts or not set(check.scopes) <= granted
        ):
            if "none" in prompts:
                result = await self.server.error_redirect(http, params, ConsentRequiredError())
                return self.client_redirect(result, session, hand_off=hand_off)
            tx = session.add_pending({"kind": "authorize", "params": params, "pushed": pushed})
            await self.sessions.save(session)
            return self.page(
                "consent.html",
                session=session,
                client=client.record.name,
                client_id=client.client_id,
                scopes=check.scopes,
                subject=owner.subject,
                tx=tx,
                csrf=session.csrf,
                action=self.ctx.url("/consent"),
            )
        return self.client_redirect(
            await self.server.finish_authorization(http, params, owner), session, hand_off=hand_off
        )

    async def consent(self, request: Request) -> Response:
        session, form = await self.posted(request)
        if session is None:
            return self.error_page(400, "invalid_request", "your session has expired; start again")
        item = session.pending().pop(form.get("tx", ""), None)
        owner = await self._owner(session)
        if item is None or owner is None or item.get("kind") != "authorize":
            return self.error_page(400, "invalid_request", "this request has expired; start again")
        await self.sessions.save(session)
        params = item["params"]
        if form.get("decision") != "allow":
            result = await self.server.finish_authorization(self._auth_http(), params, None)
            return self.client_redirect(result, session, hand_off=True)
        check = await self.server.check_authorization(self._auth_http(), params, owner, pushed=True)
        if check.client is not None:
            await self.ctx.grants.grant_consent(
                owner.subject, check.client.client_id, frozenset(check.scopes)
            )
        result = await self.server.finish_authorization(self._auth_http(), params, owner)
        return self.client_redirect(result, session, hand_off=True)

    async def posted(self, request: Request) -> tuple[BrowserSession | None, dict[str, str]]:
        """The session and the posted form; the session is None unless the CSRF token and
        (when sent) the ``Origin`` header are right."""
        http = await http_input(request, self.ctx.issuer)
        form = dict(reversed(http.form))
        session = await self._session(request)
        origin = request.headers.get("origin")
        if origin is not None and origin != _origin(self.ctx.issuer):
            return None, form
        if session is None or not session.check_csrf(form.get("csrf")):
            return None, form
        return session, form

    # --- device verification (RFC 8628 §3.3) -------------------------------------

    async def device(self, request: Request) -> Response:
        if request.method == "GET":
            session = await self._session(request)
            owner = await self._owner(session)
            user_code = request.query_params.get("user_code", "")
            tx = request.query_params.get("tx", "")
            if session is not None and tx in session.pending():
                user_code = session.pending().pop(tx).get("user_code", user_code)
                await self.sessions.save(session)
            if owner is None:
                session = session or await self.sessions.create()
                tx = session.add_pending({"kind": "device", "user_code": user_code[:32]})
                await self.sessions.save(session)
                return self.redirect(f"{self.ctx.url('/login')}?{urlencode({'tx': tx})}", session)
            if session is None:  # pragma: no cover - an owner always comes from a session
                return self.error_page(400, "invalid_request", "no session")
            return self.page("device.html", session=session, csrf=session.csrf, user_code=user_code,
                             subject=owner.subject, action=self.ctx.url("/device"))  # fmt: skip
        session, form = await self.posted(request)
        owner = await self._owner(session)
        if session is None or owner is None:
            return self.error_page(400, "invalid_request", "your session has expired; start again")
        ip = client_ip(request)
        # Guessing user codes is throttled per address like failed logins (RFC 8628 §5.1).
        if await self.throttle.failures_blocked(account=None, ip=ip) is not None:
            return self.error_page(429, "slow_down", "Too many attempts. Wait a minute.")
        row = await self.ctx.grants.device_by_user_code(
            normalize_user_code(form.get("user_code", ""))
        )
        approved = form.get("decision") == "allow"
        if row is None or not await self.ctx.grants.decide_device(row, owner, approved):
            await self.throttle.record_failure(account=None, ip=ip)
            return self.page("device.html", 400, session=session, csrf=session.csrf, user_code="",
                             subject=owner.subject, action=self.ctx.url("/device"),
                             message="That code is not valid or has expired.")  # fmt: skip
        self.ctx.emit({"event": "device_decision", "subject": owner.subject,
                       "client_id": row.client_id, "approved": approved})  # fmt: skip
        text = "Return to your device." if approved else "The device was not given access."
        return self.page("message.html", session=session, title="Done", text=text)

    # --- RP-initiated logout -----------------------------------------------------

    async def logout(self, request: Request) -> Response:
        http = await http_input(request, self.ctx.issuer)
        session = await self._session(request)
        confirmed = False
        if request.method == "POST":
            form = dict(reversed(http.form))
            confirmed = (
                session is not None
                and session.check_csrf(form.get("csrf"))
                and form.get("confirm") == "yes"
            )
            params = {k: v for k, v in form.items() if k not in ("csrf", "confirm")}
            http = HttpInput(
                "POST", http.url, http.headers, (), tuple(params.items()), http.client_ip
            )
        result, confirm = await self.server.end_session(http, confirmed=confirmed)
        if confirm:
            session = session or await self.sessions.create()
            fields = dict(reversed([*http.query, *http.form]))
            return self.page("logout.html", session=session, csrf=session.csrf,
                             fields=fields, action=self.ctx.url("/logout"))  # fmt: skip
        if result is not None and result.status >= 400:
            return self.error_page(400, "invalid_request", "the logout request is not valid")
        if session is not None:
            await self.sessions.delete(session)
            self.ctx.emit({"event": "logout", "subject": session.subject})
        response: Response
        if result is not None and result.location and request.method == "POST":
            response = self.hand_off(result.location)  # the answer to a form post
        elif result is not None and result.location:
            response = RedirectResponse(result.location, status_code=302)
        else:
            response = self.page("message.html", title="Signed out", text="You are signed out.")
        self.clear_cookie(response)
        return response

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(
            self.cookie_name, path="/", secure=self.secure, httponly=True, samesite="lax"
        )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}"
