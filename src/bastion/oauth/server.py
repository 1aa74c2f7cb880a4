"""The authorization server's core: Authlib's ``AuthorizationServer`` with bastion's grants,
endpoints and stores, behind async methods that take and return plain values.

No web framework here: :mod:`bastion.oauth._http` turns Starlette requests into
:class:`~bastion.oauth._authlib.HttpInput` and :class:`~bastion.oauth._authlib.OAuthResponse`
into Starlette responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core.errors import LoginRequiredError
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.config import Config
from bastion.keyring import Keyring
from bastion.model import Clock, system_clock
from bastion.oauth import _client_auth, _grants
from bastion.oauth._authlib import (
    BaseServer,
    BastionRequest,
    Bridge,
    HttpInput,
    OAuthResponse,
    make_response,
)
from bastion.oauth._context import PAR_URN, Emit, OAuthContext
from bastion.oauth._endpoints import DeviceAuthorization, EndSession, Introspection, Revocation
from bastion.oauth._oidc import CodeIdTokens, GrantIdTokens, hinted_subject
from bastion.oauth._store import GrantStore, Owner
from bastion.oauth._tokens import TokenFactory
from bastion.oauth.clients import Client, ClientRegistry, ClientStore
from bastion.oauth.keys import SigningKeys
from bastion.oauth.resource import OwnTokens
from bastion.oauth.revocation import RevocationMirror, revocation_channel
from bastion.tokens import InMemoryRevocations

log = logging.getLogger("bastion.oauth")
GRANT_HMAC_LABEL = "bastion oauth grant hmac v1"


class _Issuer(IssuerParameter):  # type: ignore[misc]
    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def get_issuer(self) -> str:
        return self.issuer


class _Server(BaseServer):
    """Authlib's server; hooks reach bastion's stores through ``ctx``."""

    def __init__(self, ctx: OAuthContext) -> None:
        super().__init__(scopes_supported=None)
        self.ctx = ctx

    def query_client(self, client_id: Any) -> Client | None:
        if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
            return None
        hit, client = self.ctx.clients.cached(client_id)
        if hit:
            return client
        return self.ctx.bridge.call(self.ctx.clients.get, client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        _grants.save_token(self.ctx, token, request)

    def authenticate_client(self, request: Any, methods: Any, endpoint: str = "token") -> Any:
        """Authlib's, with one answer for every failure, audited (oauth._client_auth)."""
        try:
            return super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as error:
            raise _client_auth.failed(
                self.ctx, self.query_client, request, endpoint, error
            ) from None


@dataclass
class AuthorizeCheck:
    """The outcome of validating an authorization request before login/consent."""

    params: dict[str, str]
    client: Client | None = None
    scopes: tuple[str, ...] = ()
    redirect: OAuthResponse | None = None  # an error sent back to the client
    error: str | None = None  # an error shown to the user (never redirected)
    description: str = ""

    @property
    def ok(self) -> bool:
        return self.redirect is None and self.error is None


class OAuthServer:
    """Everything the authorization server does, as async methods over plain values.

    Args:
        config: the deployment's config (``oauth:`` section and ``issuer_url``).
        engine: the database.
        keyring: hashes secrets, decrypts signing keys.
        revocations: the gateway's revocation hook, kept in step here.
        emit: writes one audit event.
        clock: seconds since the epoch.
    """

    def __init__(
        self,
        config: Config,
        engine: AsyncEngine,
        keyring: Keyring,
        *,
        revocations: InMemoryRevocations,
        emit: Emit,
        clock: Clock = system_clock,
    ) -> None:
        oauth = config.oauth
        grants = GrantStore(engine, keyring.derive(GRANT_HMAC_LABEL), clock=clock)
        secret_key = keyring.client_secret_hmac
        clients = ClientRegistry(
            ClientStore(engine, secret_key, clock=clock), secret_key, ttl=oauth.client_cache_seconds
        )
        keys = SigningKeys(engine, keyring, clock=clock)
        mirror = RevocationMirror(
            grants,
            revocations,
            redis_url=config.redis_url,
            channel=revocation_channel(config.redis_namespace),
            interval=oauth.revocation_sync_seconds,
            clock=clock,
        )
        self.ctx = OAuthContext(
            config=config,
            clients=clients,
            grants=grants,
            keys=keys,
            revocations=mirror,
            bridge=Bridge(),
            emit=self._emit,
            clock=clock,
        )
        self._audit = emit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self.tokens = OwnTokens(
            issuer=config.issuer_url,
            audience=config.oauth_audience,
            keys=keys,
            grants=grants,
            revocations=revocations,
            clock=clock,
        )
        self._authlib = self._build_authlib()
        self._tasks: list[asyncio.Task[None]] = []

    def _build_authlib(self) -> _Server:
        ctx = self.ctx
        server = _Server(ctx)
        server.register_token_generator("default", TokenFactory(ctx))
        server.register_client_auth_method("private_key_jwt", _grants.PrivateKeyJwt(ctx))
        server.register_grant(
            _grants.CodeGrant, [_grants.S256Only(required=True), CodeIdTokens(ctx)]
        )
        server.register_grant(_grants.RefreshGrant, [GrantIdTokens(ctx)])
        server.register_grant(_grants.ClientCredentialsGrant)
        server.register_grant(_grants.DeviceGrant, [GrantIdTokens(ctx)])
        server.register_endpoint(Revocation(ctx, self.tokens))
        server.register_endpoint(Introspection(ctx, self.tokens))
        server.register_endpoint(DeviceAuthorization(ctx))
        server.register_endpoint(EndSession(ctx))
        server.register_extension(_Issuer(ctx.issuer))
        return server

    # --- lifecycle ----------------------------------------------------------------

    def _emit(self, event: dict[str, Any]) -> None:
        # Authlib's hooks run in worker threads; the audit log is written by the event
        # loop (its flush timer lives there), so an event from a thread is handed over.
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread or loop.is_closed():
            self._audit(event)
        else:
            loop.call_soon_threadsafe(self._audit, event)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        await self.ctx.keys.reload()
        await self.ctx.revocations.start()
        self._tasks.append(asyncio.create_task(self._refresh_keys(), name="bastion-oauth-keys"))

    async def _refresh_keys(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.ctx.keys.stale():
                try:
                    await self.ctx.keys.reload()
                except Exception as exc:  # noqa: BLE001 - keep the keys we have; retry
                    log.warning("signing key reload failed: %s", exc.__class__.__name__)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.ctx.revocations.aclose()

    # --- token endpoint and friends (Authlib in a worker thread) -----------------

    async def _run(self, fn: Callable[[], OAuthResponse], *, inline: bool = False) -> OAuthResponse:
        return await self.ctx.bridge.run(_input_errors(fn, _invalid_request), inline_first=inline)

    async def token(self, http: HttpInput) -> OAuthResponse:
        # Tried on the event loop first: client_credentials with a cached client needs no I/O.
        return await self._run(lambda: self._authlib.create_token_response(http), inline=True)

    async def revoke(self, http: HttpInput) -> OAuthResponse:
        return await self._run(lambda: self._authlib.create_endpoint_response("revocation", http))

    async def introspect(self, http: HttpInput) -> OAuthResponse:
        return await self._run(
            lambda: self._authlib.create_endpoint_response("introspection", http)
        )

    async def device_authorization(self, http: HttpInput) -> OAuthResponse:
        return await self._run(
            lambda: self._authlib.create_endpoint_response("device_authorization", http)
        )

    async def end_session(
        self, http: HttpInput, *, confirmed: bool
    ) -> tuple[OAuthResponse | None, bool]:
        """RP-initiated logout: ``(redirect or None, needs_confirmation)``."""

        def work() -> tuple[OAuthResponse | None, bool]:
            try:
                validated = self._authlib.validate_endpoint_request("end_session", http)
            except OAuth2Error as error:
                return self._authlib.handle_error_response(None, error), False
            if validated.needs_confirmation and not confirmed:
                return None, True
            return self._authlib.create_endpoint_response("end_session", validated), False

        return await self.ctx.bridge.run(work)

    async def push_authorization_request(self, http: HttpInput) -> OAuthResponse:
        """RFC 9126 §2: authenticate the client, validate the request, store it."""

        def work() -> OAuthResponse | tuple[Client, dict[str, str]]:
            request = BastionRequest(http)
            try:
                client = self._authlib.authenticate_client(request, _grants.ALL_METHODS, "par")
                params = {
                    k: v for k, v in request.payload.data.items() if not k.startswith("client_")
                }
                if "request_uri" in params or "request" in params:
                    raise InvalidRequestError(
                        "request_uri and request are not allowed in a pushed request"
                    )
                if request.payload.client_id not in (None, client.client_id):
                    raise InvalidRequestError("client_id does not match the authenticated client")
                params["client_id"] = client.client_id
                checked = BastionRequest(HttpInput("GET", http.url), params)
                grant = self._authlib.get_authorization_grant(checked)
                grant.validate_no_multiple_request_parameter(checked)
                grant.validate_authorization_request()
            except OAuth2Error as error:
                error.redirect_uri = None  # RFC 9126 §2.3: errors go in the response body
                response: OAuthResponse = self._authlib.handle_error_response(request, error)
                return response
            return client, params

        result = await self.ctx.bridge.run(_input_errors(work, _invalid_request))
        if isinstance(result, OAuthResponse):
            return result
        client, params = result
        request_id = secrets.token_urlsafe(32)
        ttl = self.ctx.config.oauth.par_ttl_seconds
        await self.ctx.grants.push_request(request_id, client.client_id, params, ttl)
        body = {"request_uri": PAR_URN + request_id, "expires_in": ttl}
        return make_response(
            201, body, [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        )

    # --- the authorization endpoint ------------------------------------------------

    async def resolve_pushed(self, params: dict[str, str]) -> tuple[dict[str, str] | None, str]:
        """Swap ``request_uri`` for the pushed parameters (single use). ``(None, reason)``
        when it cannot be used."""
        uri = params.get("request_uri", "")
        client_id = params.get("client_id")
        if not uri.startswith(PAR_URN) or not client_id:
            return None, "request_uri must be a pushed request (RFC 9126) and client_id is required"
        pushed = await self.ctx.grants.take_request(uri.removeprefix(PAR_URN)[:64], client_id)
        if pushed is None:
            return None, "the request_uri is unknown, expired, used or for another client"
        return pushed, ""

    async def check_authorization(
        self, http: HttpInput, params: dict[str, str], owner: Owner | None, *, pushed: bool
    ) -> AuthorizeCheck:
        """Validate an authorization request (Authlib's consent-grant validation)."""

        def work() -> AuthorizeCheck:
            request = BastionRequest(http, params)
            try:
                grant = self._authlib.get_consent_grant(request, end_user=owner)
            except OAuth2Error as error:
                if error.redirect_uri:
                    response = self._authlib.handle_error_response(request, error)
                    _Issuer(self.ctx.issuer).add_issuer_parameter(self._authlib, response)
                    return AuthorizeCheck(params, redirect=response)
                return AuthorizeCheck(
                    params, error=error.error, description=error.description or ""
                )
            client: Client = grant.client
            if client.record.require_par and not pushed:
                par_error = InvalidRequestError(
                    "this client must use pushed authorization requests"
                )
                par_error.redirect_uri = grant.redirect_uri
                par_error.state = request.payload.state
                response = self._authlib.handle_error_response(request, par_error)
                _Issuer(self.ctx.issuer).add_issuer_parameter(self._authlib, response)
                return AuthorizeCheck(params, redirect=response)
            # With prompt=login the user signs in again first; the hint is then checked
            # against that login when the code is issued (finish_authorization).
            relogin = {"login", "select_account"} & set(params.get("prompt", "").split())
            hint_error = self._hint_error(params, client, None if relogin else owner)
            if hint_error is not None:
                hint_error.redirect_uri = grant.redirect_uri
                hint_error.state = request.payload.state
                response = self._authlib.handle_error_response(request, hint_error)
                _Issuer(self.ctx.issuer).add_issuer_parameter(self._authlib, response)
                return AuthorizeCheck(params, redirect=response)
            return AuthorizeCheck(
                params, client=client, scopes=tuple((request.scope or "").split())
            )

        return await self.ctx.bridge.run(
            _input_errors(work, lambda: AuthorizeCheck(params, error="invalid_request"))
        )

    async def error_redirect(
        self, http: HttpInput, params: dict[str, str], error: OAuth2Error
    ) -> OAuthResponse:
        """Send ``error`` to the (already validated) redirect URI, with ``state`` and ``iss``."""

        def work() -> OAuthResponse:
            request = BastionRequest(http, params)
            error.redirect_uri = request.payload.redirect_uri
            error.state = request.payload.state
            response: OAuthResponse = self._authlib.handle_error_response(request, error)
            _Issuer(self.ctx.issuer).add_issuer_parameter(self._authlib, response)
            return response

        return await self.ctx.bridge.run(work)

    async def finish_authorization(
        self, http: HttpInput, params: dict[str, str], owner: Owner | None
    ) -> OAuthResponse:
        """Issue the code (``owner`` given) or ``access_denied`` (``None``), as a redirect."""

        def work() -> OAuthResponse:
            request = BastionRequest(http, params)
            try:
                grant = self._authlib.get_consent_grant(request, end_user=owner)
                if owner is not None:
                    hint_error = self._hint_error(params, grant.client, owner)
                    if hint_error is not None:
                        hint_error.redirect_uri = grant.redirect_uri
                        hint_error.state = request.payload.state
                        raise hint_error
            except OAuth2Error as error:
                response: OAuthResponse = self._authlib.handle_error_response(request, error)
                _Issuer(self.ctx.issuer).add_issuer_parameter(self._authlib, response)
                return response
            issued: OAuthResponse = self._authlib.create_authorization_response(
                request, grant_user=owner, grant=grant
            )
            return issued

        return await self.ctx.bridge.run(_input_errors(work, _invalid_request))

    def _hint_error(
        self, params: dict[str, str], client: Client, owner: Owner | None
    ) -> OAuth2Error | None:
        """OIDC Core §3.1.2.1: an ``id_token_hint`` must be an ID token of ours for this
        client (``invalid_request``) naming the signed-in user; another user is
        ``login_required`` (the client may retry with ``prompt=login``)."""
        hint = params.get("id_token_hint")
        if not hint:
            return None
        try:
            subject = hinted_subject(self.ctx, hint, client.client_id)
        except OAuth2Error as error:
            return error
        if owner is not None and subject != owner.subject:
            self.ctx.emit({"event": "id_token_hint_mismatch", "client_id": client.client_id,
                           "subject": owner.subject})  # fmt: skip
            return LoginRequiredError(description="the signed-in user is not the hinted one")
        return None


T = TypeVar("T")


def _input_errors(fn: Callable[[], T], fallback: Callable[[], T]) -> Callable[[], T]:
    """Authlib raises ``ValueError`` when it builds an error description that echoes
    hostile input (a quote, a backslash): that is bad input, answered ``invalid_request``."""

    def wrapped() -> T:
        try:
            return fn()
        except ValueError as exc:
            log.info("refused hostile input: %s", exc.__class__.__name__)
            return fallback()

    return wrapped


def _invalid_request() -> OAuthResponse:
    return make_response(
        400, {"error": "invalid_request"}, [("Content-Type", "application/json"), *_NO_STORE]
    )


_NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
