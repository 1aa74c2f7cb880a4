"""The users admin API (the same operations as ``bastion users``):

``GET /oauth2/admin/users``, ``POST /oauth2/admin/users`` (JSON: username, password,
roles, email, name), ``POST /oauth2/admin/users/{username}/disable|enable|reset-mfa``.
Callers authenticate like the client admin API (an API key, HTTP Basic or a bastion
access token) and need the role ``oauth.admin_role``. A new password meets the policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.credentials._passwords import Passwords
from bastion.credentials.basic import check_username
from bastion.identity._store import IdentityStore
from bastion.identity.policy import password_problems
from bastion.model import Principal
from bastion.oauth._http import (
    AdminAuth,
    admin_principal,
    guarded,
    json_object,
    json_response,
    oauth_error,
)
from bastion.store._db import RecordNotFound
from bastion.store.users import UserRecord, UserStore

if TYPE_CHECKING:
    from bastion.oauth._pages import Pages

MAX_BODY = 16 * 1024
PREFIX = "/oauth2/admin/users"


class UsersAdmin:
    def __init__(
        self, pages: Pages, admin_auth: AdminAuth, users: UserStore, store: IdentityStore,
        passwords: Passwords,
    ) -> None:  # fmt: skip
        self.ctx = pages.ctx
        self.admin_auth = admin_auth
        self.users = users
        self.store = store
        self.passwords = passwords

    def routes(self) -> list[Route]:
        return [
            Route(PREFIX, guarded(self.collection), methods=["GET", "POST"]),
            Route(f"{PREFIX}/{{username}}/{{action}}", guarded(self.action), methods=["POST"]),
        ]

    async def _admin(self, request: Request) -> Principal:
        return await admin_principal(request, self.admin_auth, self.ctx.config.oauth.admin_role)

    async def _user(self, user: UserRecord) -> dict[str, Any]:
        factors = await self.store.factors(user.username)
        return {
            "username": user.username,
            "roles": list(user.roles),
            "disabled": user.disabled,
            "mfa": {"totp": factors.totp, "passkeys": factors.passkeys,
                    "recovery_codes": factors.recovery_codes},
            "created_at": user.created_at.isoformat(),
        }  # fmt: skip

    async def collection(self, request: Request) -> Response:
        principal = await self._admin(request)
        if request.method == "GET":
            return json_response(200, [await self._user(u) for u in await self.users.list()])
        data = await json_object(request, MAX_BODY)
        try:
            username = check_username(str(data.get("username", "")))
        except ValueError as exc:
            return oauth_error(400, "invalid_username", str(exc))
        password = data.get("password")
        if not isinstance(password, str):
            password = ""
        problems = password_problems(password, username=username)
        if problems:
            return oauth_error(400, "weak_password", "; ".join(problems))
        roles = data.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            return oauth_error(400, "invalid_request", "roles must be a list of strings")
        user = await self.users.add(username, await self.passwords.hash(password), roles)
        self.ctx.emit({"event": "user_created", "subject": username, "by": principal.subject})
        return json_response(201, await self._user(user))

    async def action(self, request: Request) -> Response:
        principal = await self._admin(request)
        username, action = request.path_params["username"], request.path_params["action"]
        try:
            if action == "disable":
                user = await self.users.disable(username)
                ended = await self.store.end_sessions(username)
            elif action == "enable":
                user = await self.users.enable(username)
                ended = 0
            elif action == "reset-mfa":
                found = await self.users.get_by_username(username)
                if found is None:
                    raise RecordNotFound("no user")
                ended = await self.store.reset(username)
                user = found
            else:
                return oauth_error(404, "not_found")
        except RecordNotFound:
            return oauth_error(404, "not_found", "no such user")
        self.ctx.emit({"event": f"user_{action.replace('-', '_')}", "subject": username,
                       "by": principal.subject, "sessions_ended": ended})  # fmt: skip
        return json_response(200, {**await self._user(user), "sessions_ended": ended})
