"""A token issued before a password change still works after it."""

from __future__ import annotations

import secrets

from bastion.scan._context import ScanContext
from bastion.scan._identity import Identity, LoginRecipe
from bastion.scan._model import Owasp, Severity
from bastion.scan._openapi import Operation
from bastion.scan._target import Exchange
from bastion.scan.checks._base import Check
from bastion.scan.checks.password_change import fields, password_ops


class RestoreFailed(RuntimeError):
    """The identity's original password could not be put back (reported as an error)."""


class TokenAfterPasswordChange(Check):
    id = "token_after_password_change"
    title = "Token still valid after a password change"
    severity = Severity.MEDIUM
    owasp = Owasp.API2
    cwe = 613
    why = (
        "Changing the password is what a user does when they fear their account is taken. "
        "If tokens issued before keep working, the attacker who stole one keeps access."
    )
    fix = (
        "On a password change revoke every session and token of the user except, at most, "
        "the one that made the change (e.g. a per-user token generation checked on each "
        "request), and keep access tokens short-lived."
    )
    phase = 2

    async def run(self, ctx: ScanContext) -> None:
        profiles = await ctx.profiles()
        for op in password_ops(ctx):
            new_f, old_f = fields(op)
            if new_f is None:
                continue
            for ident, recipe in ctx.login_recipes():
                if ident.admin or not recipe.password_field or not recipe.password:
                    continue
                if ident.name in profiles:
                    await self._probe(ctx, op, ident, recipe, (new_f, old_f))
                    return

    async def _probe(
        self,
        ctx: ScanContext,
        op: Operation,
        ident: Identity,
        recipe: LoginRecipe,
        names: tuple[str, str | None],
    ) -> None:
        new_f, old_f = names
        oracle = (await ctx.profiles())[ident.name].path
        # A fresh login of its own: this is the token an attacker would have stolen.
        token = ctx.login_token(recipe, await ctx.login(recipe))
        if not token:
            return
        old = Identity(ident.name, "bearer", token, login=recipe)
        ctx.redactor.add(token)
        if not await ctx.shows(await ctx.send("GET", oracle, identity=old), ident):
            return
        temp = "Bastion-" + secrets.token_urlsafe(12)
        ctx.redactor.add(temp)
        body = {new_f: temp, **({old_f: recipe.password} if old_f else {})}
        change = await ctx.send(op.method, op.path, identity=old, json_body=body)
        if change is None or not change.ok:
            return
        after = await ctx.send("GET", oracle, identity=old)
        await self._restore(ctx, op, recipe, (new_f, old_f), temp, old)
        await ctx.relogin(ident)
        if after is not None and await ctx.shows(after, ident):
            note = (
                f"logged in afresh as {ident.name}, changed the password with {op.key} "
                f"(HTTP {change.status}), then the token from before the change still read "
                f"{oracle} (the original password was restored)"
            )
            ctx.report(
                self.finding(
                    ctx.target.url(op.path),
                    [ctx.evidence(change, "the password change"), ctx.evidence(after, note)],
                )
            )

    async def _restore(
        self,
        ctx: ScanContext,
        op: Operation,
        recipe: LoginRecipe,
        names: tuple[str, str | None],
        temp: str,
        old: Identity,
    ) -> None:
        new_f, old_f = names
        original = recipe.password or ""
        pass_f = recipe.password_field or "password"
        token = ctx.login_token(recipe, await ctx.login(recipe, {pass_f: temp}))
        body = {new_f: original, **({old_f: temp} if old_f else {})}
        for who in ([Identity(old.name, "bearer", token)] if token else []) + [old]:
            done: Exchange | None = await ctx.send(op.method, op.path, identity=who, json_body=body)
            if done is not None and done.ok:
                return
        # The operator must be able to log in again: the one place a secret is shown.
        raise RestoreFailed(
            f"could not restore the original password of {old.name}; it is now {temp!r}"
        )
