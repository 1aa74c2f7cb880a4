"""The authorization server over HTTP (Starlette): the adapter between Starlette requests
and :class:`~bastion.oauth.server.OAuthServer`, the protocol endpoints, discovery,
``/userinfo`` and the admin API. The browser pages live in :mod:`bastion.oauth._pages`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.errors import (
    AuthenticationError,
    BastionError,
    Forbidden,
    InternalError,
    InvalidToken,
)
from bastion.gateway._asgi import Trust, remote_of
from bastion.model import Principal, RequestView
from bastion.oauth._authlib import MAX_PARAMS, HttpInput, OAuthResponse
from bastion.oauth._context import PREFIX
from bastion.oauth._oidc import user_info
from bastion.oauth.clients import InvalidClientMetadata, record_from_metadata
from bastion.oauth.discovery import metadata
from bastion.oauth.server import OAuthServer
from bastion.store._db import RecordNotFound

log = logging.getLogger("bastion.oauth.http")
MAX_FORM_BYTES = 64 * 1024
BODY_SECONDS = 30.0  # a body not whole this long after the app asked for it is refused
FORM = "application/x-www-form-urlencoded"
NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
NOSNIFF = ("X-Content-Type-Options", "nosniff")

AdminAuth = Callable[[RequestView], Awaitable[Principal]]


async def admin_principal(request: Request, admin_auth: AdminAuth, role: str) -> Principal:
    """Authenticate an admin-API caller with the gateway's methods; require ``role``."""
    remote = remote_of(request.scope)
    view = RequestView(
        method=request.method,
        path=request.url.path,
        query=request.url.query,
        headers={k.lower(): v for k, v in request.headers.items()},
        client_ip=remote.ip,
        secure=remote.secure,
    )
    principal = await admin_auth(view)
    if role not in principal.roles:
        raise Forbidden("missing_admin_role")
    return principal


def client_ip(request: Request) -> str:
    """The client's address as the gateway resolved it (a trusted proxy's
    ``X-Forwarded-For`` honoured), never the TCP peer's."""
    return remote_of(request.scope).ip


Handler = Callable[[Request], Awaitable[Response]]


class BadInput(Exception):
    """A request bastion cannot parse: always ``invalid_request``."""


def json_response(status: int, body: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers=dict([*NO_STORE, NOSNIFF, *(headers or [])]),
    )


def oauth_error(status: int, error: str, description: str = "") -> Response:
    body = {"error": error}
    if description:
        body["error_description"] = description
    return json_response(status, body)


def to_response(result: OAuthResponse) -> Response:
    headers: dict[str, str] = {}
    for name, value in result.headers:
        headers[name] = value
    headers.setdefault("X-Content-Type-Options", "nosniff")
    return Response(result.body, status_code=result.status, headers=headers)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _parse(text: str) -> list[tuple[str, str]]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_PARAMS)
    except (ValueError, UnicodeDecodeError):
        raise BadInput("malformed parameters") from None
    for name, value in pairs:
        # Parameters are printable ASCII/UTF-8 text; control characters are never valid.
        if _CONTROL.search(name) or _CONTROL.search(value):
            raise BadInput("control characters in parameters")
    return pairs


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, read as it arrives, at most ``limit`` bytes and within
    :data:`BODY_SECONDS` (a body sent a byte at a time cannot hold the request).

    Raises:
        BadInput: a declared Content-Length past ``limit`` (refused before reading), a
            body that passes it, or one that has not arrived in time.
    """
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise BadInput("the body is too large")
    body = bytearray()
    try:
        async with asyncio.timeout(BODY_SECONDS):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise BadInput("the body is too large")
    except TimeoutError:
        raise BadInput("the body did not arrive in time") from None
    return bytes(body)


async def json_object(request: Request, limit: int) -> dict[str, Any]:
    """An ``application/json`` body that is one JSON object of at most ``limit`` bytes.

    Raises:
        BadInput: another content type, a larger body, not JSON, not an object.
    """
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BadInput("the body must be application/json")
    body = await read_body(request, limit)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadInput("the body is not JSON") from None
    if not isinstance(data, dict):
        raise BadInput("the body must be a JSON object")
    return data


async def http_input(request: Request, issuer: str) -> HttpInput:
    """Starlette request → :class:`HttpInput` (the public URL is built from ``issuer``).

    Raises:
        BadInput: a body that is not a small ``application/x-www-form-urlencoded`` form.
    """
    scope = request.scope
    # Read from the scope: building Starlette's URL object costs ~15 µs a request.
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    form: list[tuple[str, str]] = []
    if scope["method"] == "POST":
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != FORM:
            raise BadInput("the body must be application/x-www-form-urlencoded")
        body = await read_body(request, MAX_FORM_BYTES)
        try:
            form = _parse(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise BadInput("the body is not UTF-8") from None
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    url = issuer + path + (f"?{query}" if query else "")
    return HttpInput(
        method=scope["method"],
        url=url,
        headers=headers,
        query=_parse(query) if query else [],
        form=form,
        client_ip=remote_of(scope).ip,
        cookies=dict(request.cookies) if "cookie" in headers else {},
    )


FAILURE = "bastion.failure"  # scope["state"] key: why the answer was a 5xx (for the audit)


def failure(scope: Any) -> BastionError | None:
    """The error a :func:`guarded` handler answered with a 5xx, if any."""
    found = scope.get("state", {}).get(FAILURE)
    return found if isinstance(found, BastionError) else None


def guarded(fn: Handler) -> Handler:
    """Bad input is a 400 ``invalid_request``; a dependency down a 503; a bug a 500 — the
    client learns only the code (the log learns why, and the audit line of a 5xx too)."""

    @functools.wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except BadInput as exc:
            return oauth_error(400, "invalid_request", str(exc))
        except BastionError as exc:
            if exc.status >= 500:
                request.scope.setdefault("state", {})[FAILURE] = exc
            headers = list(getattr(exc, "headers", []) or [])
            if isinstance(exc, AuthenticationError):  # the admin API's callers
                headers.append(("WWW-Authenticate", 'Bearer realm="bastion"'))
            body = {"error": exc.code}
            if exc.detail:  # written to be shown (BastionError.detail)
                body["error_description"] = exc.detail
            return json_response(exc.status, body, headers)
        except Exception as exc:
            log.exception("authorization server error on %s", request.url.path)
            request.scope.setdefault("state", {})[FAILURE] = InternalError(type(exc).__name__)
            return oauth_error(500, "server_error")

    return wrapper


class ProtocolEndpoints:
    """Token, revocation, introspection, PAR, device authorization, userinfo, discovery."""

    def __init__(self, server: OAuthServer, admin_auth: AdminAuth) -> None:
        self.server = server
        self.ctx = server.ctx
        self.admin_auth = admin_auth

    async def _input(self, request: Request) -> HttpInput:
        http = await http_input(request, self.ctx.issuer)
        repeated = http.repeated()
        if repeated is not None:
            raise BadInput(f"parameter {repeated!r} repeated")  # RFC 6749 §3.2
        return http

    async def token(self, request: Request) -> Response:
        return to_response(await self.server.token(await self._input(request)))

    async def revoke(self, request: Request) -> Response:
        return to_response(await self.server.revoke(await self._input(request)))

    async def introspect(self, request: Request) -> Response:
        return to_response(await self.server.introspect(await self._input(request)))

    async def par(self, request: Request) -> Response:
        return to_response(await self.server.push_authorization_request(await self._input(request)))

    async def device_authorization(self, request: Request) -> Response:
        return to_response(await self.server.device_authorization(await self._input(request)))

    async def openid_configuration(self, request: Request) -> Response:
        return json_response(
            200, metadata(self.ctx, oidc=True), [("Cache-Control", "public, max-age=300")]
        )

    async def oauth_metadata(self, request: Request) -> Response:
        return json_response(
            200, metadata(self.ctx, oidc=False), [("Cache-Control", "public, max-age=300")]
        )

    async def userinfo(self, request: Request) -> Response:
        """OIDC Core §5.3; the token only in the ``Authorization`` header (RFC 6750 §2.1)."""
        realm = 'Bearer realm="bastion"'
        if "access_token" in request.query_params:
            return _bearer_error(400, "invalid_request", realm)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return Response(status_code=401, headers={"WWW-Authenticate": realm, **dict(NO_STORE)})
        try:
            principal = await self.server.tokens.principal(token.strip())
        except InvalidToken:
            return _bearer_error(401, "invalid_token", realm)
        if "openid" not in principal.scopes:
            return _bearer_error(403, "insufficient_scope", realm)
        owner = await self.ctx.grants.owner(principal.subject)
        if owner is None:
            return _bearer_error(401, "invalid_token", realm)
        return json_response(200, dict(user_info(owner, " ".join(principal.scopes))))

    # --- admin API: the same client operations as `bastion clients` -------------

    async def _admin(self, request: Request) -> Principal:
        return await admin_principal(request, self.admin_auth, self.ctx.config.oauth.admin_role)

    async def admin_clients(self, request: Request) -> Response:
        principal = await self._admin(request)
        store = self.ctx.clients.store
        if request.method == "GET":
            return json_response(200, [c.as_dict() for c in await store.list()])
        data = await json_object(request, MAX_FORM_BYTES)
        try:
            created = await store.create(record_from_metadata(data))
        except InvalidClientMetadata as exc:
            return oauth_error(400, exc.code, exc.detail or "")
        self.ctx.clients.invalidate(created.record.client_id)
        self.ctx.emit({"event": "client_created", "client_id": created.record.client_id,
                       "by": principal.subject})  # fmt: skip
        out = created.record.as_dict()
        if created.secret is not None:
            out["client_secret"] = created.secret
        return json_response(201, out)

    async def admin_client(self, request: Request) -> Response:
        principal = await self._admin(request)
        client_id = request.path_params["client_id"]
        store = self.ctx.clients.store
        try:
            if request.method == "GET":
                record = await store.get(client_id)
                if record is None:
                    raise RecordNotFound("no client")
                return json_response(200, record.as_dict())
            if request.method == "DELETE":
                await store.delete(client_id)
                self.ctx.clients.invalidate(client_id)
                self.ctx.emit(
                    {"event": "client_deleted", "client_id": client_id, "by": principal.subject}
                )
                return Response(status_code=204, headers=dict(NO_STORE))
            rotated = await store.rotate_secret(client_id)
        except InvalidClientMetadata as exc:
            return oauth_error(400, exc.code, exc.detail or "")
        self.ctx.clients.invalidate(client_id)
        self.ctx.emit(
            {"event": "client_secret_rotated", "client_id": client_id, "by": principal.subject}
        )
        return json_response(200, {"client_id": client_id, "client_secret": rotated.secret})


def _bearer_error(status: int, error: str, realm: str) -> Response:
    headers = {"WWW-Authenticate": f'{realm}, error="{error}"', **dict(NO_STORE)}
    return Response(orjson.dumps({"error": error}), status_code=status, headers=headers,
                    media_type="application/json")  # fmt: skip


class AuthorizationServerApp:
    """The authorization server's ASGI app: ``POST /oauth2/token``, its hot path, is
    answered directly; every other path goes through the Starlette router."""

    def __init__(self, router: Starlette, token: Handler, trust: Trust) -> None:
        self.router = router
        self._token = token
        self._token_path = f"{PREFIX}/token"
        self._trust = trust

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            self._trust.remote(scope)  # who is asking, for every handler (remote_of)
        path, method = scope.get("path"), scope.get("method")
        if scope["type"] == "http" and path == self._token_path and method == "POST":
            response = await self._token(Request(scope, receive))
            await response(scope, receive, send)
            return
        await self.router(scope, receive, send)


def build_app(
    server: OAuthServer, admin_auth: AdminAuth, pages: Any, trust: Trust
) -> AuthorizationServerApp:
    """The ASGI app for the authorization server's paths; ``trust`` says whose
    ``X-Forwarded-*`` tells the client's address and scheme."""
    api = ProtocolEndpoints(server, admin_auth)
    p = PREFIX
    routes = [
        Route(
            "/.well-known/openid-configuration", guarded(api.openid_configuration), methods=["GET"]
        ),
        Route(
            "/.well-known/oauth-authorization-server", guarded(api.oauth_metadata), methods=["GET"]
        ),
        Route(f"{p}/token", guarded(api.token), methods=["POST"]),
        Route(f"{p}/revoke", guarded(api.revoke), methods=["POST"]),
        Route(f"{p}/introspect", guarded(api.introspect), methods=["POST"]),
        Route(f"{p}/par", guarded(api.par), methods=["POST"]),
        Route(f"{p}/device_authorization", guarded(api.device_authorization), methods=["POST"]),
        Route(f"{p}/userinfo", guarded(api.userinfo), methods=["GET", "POST"]),
        Route(f"{p}/admin/clients", guarded(api.admin_clients), methods=["GET", "POST"]),
        Route(
            f"{p}/admin/clients/{{client_id}}", guarded(api.admin_client), methods=["GET", "DELETE"]
        ),
        Route(
            f"{p}/admin/clients/{{client_id}}/secret", guarded(api.admin_client), methods=["POST"]
        ),
        *pages.routes(),
    ]
    return AuthorizationServerApp(Starlette(routes=routes), guarded(api.token), trust)


def is_oauth_path(path: str) -> bool:
    """Paths the authorization server answers (everything else is the gateway's)."""
    return path.startswith(PREFIX + "/") or path in (
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    )
