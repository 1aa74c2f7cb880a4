"""Username enumeration: login, registration, password reset and profile lookups answer
differently for an existing and a made-up user (status, message, length or timing)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from bastion.scan._context import ScanContext, leaves
from bastion.scan._identity import LoginRecipe
from bastion.scan._model import Owasp, Severity
from bastion.scan._openapi import Operation, Param
from bastion.scan._target import Exchange
from bastion.scan.checks import _enumeration
from bastion.scan.checks._base import Check

REGISTER = re.compile(r"regist|sign[_-]?up|/join$|create[_-]?account", re.I)
RESET = re.compile(r"reset|forgot|recover", re.I)
USERISH = re.compile(r"user|login|mail|handle|account|name", re.I)


def _user_field(names: list[str]) -> str | None:
    return next((n for n in names if USERISH.search(n) and not n.lower().endswith("id")), None)


def _lookup_param(op: Operation) -> Param | None:
    """A path or query parameter that takes a username or email (not a numeric id)."""
    for param in (*op.path_params, *op.query_params):
        low = param.name.lower()
        if param.type in {"integer", "number"} or low.endswith("id"):
            continue
        if USERISH.search(low):
            return param
    return None


def _ghost(known: str) -> str:
    local, at, domain = known.partition("@")
    return f"{local}x{secrets.token_hex(4)}" + (at + domain if at else "")


class UserEnumeration(Check):
    id = "user_enumeration"
    title = "Username enumeration on login"
    severity = Severity.MEDIUM
    owasp = Owasp.API2
    cwe = 204
    why = (
        "When the API answers differently for existing and unknown users (login, sign-up, "
        "password reset, profile lookups), an attacker first lists valid accounts, then "
        "sprays passwords or phishing only at those."
    )
    fix = (
        "Answer identically (status, body, headers) whether or not the account exists and "
        "in the same time: run the password hash against a dummy hash for unknown users, "
        "send 'if the account exists, we emailed it' on reset and sign-up, and 404 every "
        "private or missing profile alike."
    )

    async def run(self, ctx: ScanContext) -> None:
        await self._login(ctx)
        known = await self._known_values(ctx)
        if not known:
            return
        for op in ctx.spec.operations:
            body_fields = list((op.body_schema or {}).get("properties") or {})
            if op.method == "POST" and REGISTER.search(op.path) and _user_field(body_fields):
                await self._body_probe(ctx, op, known, "registration", refuse_ok=True)
            elif op.method == "POST" and RESET.search(op.path) and _user_field(body_fields):
                await self._body_probe(ctx, op, known, "password reset", refuse_ok=False)
            elif op.method == "GET" and _lookup_param(op) is not None:
                await self._lookup(ctx, op, known)

    async def _login(self, ctx: ScanContext) -> None:
        for ident, recipe in ctx.login_recipes():
            if recipe.user_field and recipe.password_field and recipe.username:
                await self._login_probe(ctx, ident.name, recipe)
                return

    async def _login_probe(self, ctx: ScanContext, who: str, recipe: LoginRecipe) -> None:
        user_f, pass_f = recipe.user_field or "", recipe.password_field or ""
        name = recipe.username or ""
        ghosts = [_ghost(name) for _ in range(_enumeration.MAX_PAIRS)]
        names = [name, *ghosts]

        async def probe(is_known: bool) -> Exchange | None:
            wrong = "bastion-" + secrets.token_hex(6)
            user = name if is_known else ghosts.pop()
            return await ctx.login(recipe, {user_f: user, pass_f: wrong})

        verdict = await _enumeration.compare(probe, names, refuse_ok=True)
        self._report(ctx, recipe.path, "login", verdict, who)

    async def _known_values(self, ctx: ScanContext) -> dict[str, str]:
        """An existing username and email, from the login recipes and the profiles."""
        out: dict[str, str] = {}
        for _ident, recipe in ctx.login_recipes():
            if recipe.username:
                out.setdefault("mail" if "@" in recipe.username else "user", recipe.username)
        for prof in (await ctx.profiles()).values():
            for key, value in leaves(prof.body):
                low = key.rsplit(".", 1)[-1].lower()
                if isinstance(value, str) and value and "mail" in low and "@" in value:
                    out.setdefault("mail", value)
                elif isinstance(value, str) and value and low in {"username", "login", "user"}:
                    out.setdefault("user", value)
        return out

    async def _body_probe(
        self, ctx: ScanContext, op: Operation, known: dict[str, str], what: str, *, refuse_ok: bool
    ) -> None:
        props: dict[str, Any] = (op.body_schema or {}).get("properties") or {}
        field = _user_field(list(props))
        if field is None:
            return
        value = known.get("mail") if "mail" in field.lower() else known.get("user")
        if value is None:
            return
        ghosts = [_ghost(value) for _ in range(_enumeration.MAX_PAIRS)]
        # No password is ever sent: a registration cannot complete, whoever the user is.
        others = {n: "bastion-scan" for n in props if n != field and "pass" not in n.lower()}

        async def probe(is_known: bool) -> Exchange | None:
            body = {**others, field: value if is_known else ghosts.pop()}
            return await ctx.send(op.method, op.path, json_body=body)

        verdict = await _enumeration.compare(probe, [value, *ghosts], refuse_ok=refuse_ok)
        self._report(ctx, op.path, what, verdict, value)

    async def _lookup(self, ctx: ScanContext, op: Operation, known: dict[str, str]) -> None:
        param = _lookup_param(op)
        if param is None or op.path_params[1:]:
            return
        value = known.get("mail") if "mail" in param.name.lower() else known.get("user")
        if value is None:
            return
        ghosts = [_ghost(value) for _ in range(_enumeration.MAX_PAIRS)]

        async def probe(is_known: bool) -> Exchange | None:
            chosen = value if is_known else ghosts.pop()
            if param.location == "path":
                return await ctx.send("GET", op.fill({param.name: chosen}) or op.path)
            return await ctx.send("GET", op.path, params={param.name: chosen})

        verdict = await _enumeration.compare(probe, [value, *ghosts], refuse_ok=False)
        self._report(ctx, op.path, "profile lookup", verdict, value)

    def _report(
        self,
        ctx: ScanContext,
        path: str,
        where: str,
        verdict: _enumeration.Verdict | None,
        who: str,
    ) -> None:
        if verdict is None:
            return
        timing = " by timing" if verdict.how == "timing" else ""
        ctx.report(
            self.finding(
                ctx.target.url(path),
                [
                    ctx.evidence(verdict.known, f"existing user ({who})"),
                    ctx.evidence(verdict.unknown, "a user that does not exist"),
                ],
                title=f"Username enumeration on {where}{timing}",
                detail=verdict.detail,
            )
        )
