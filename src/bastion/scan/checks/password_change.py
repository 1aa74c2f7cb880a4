"""The password can be changed without knowing the current one."""

from __future__ import annotations

import re
import secrets

from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan._openapi import Operation
from bastion.scan.checks._base import Check

PASSWORD_PATH = re.compile(r"passw(or)?d", re.I)
NEW_FIELD = re.compile(r"^(new[_-]?)?passw(or)?d$|^new", re.I)
OLD_FIELD = re.compile(r"old|current|existing", re.I)


def fields(op: Operation) -> tuple[str | None, str | None]:
    """The (new password, current password) fields of a password-change body."""
    props = list((op.body_schema or {}).get("properties") or {})
    old = next((p for p in props if OLD_FIELD.search(p)), None)
    new = next((p for p in props if p != old and NEW_FIELD.search(p)), None)
    return new, old


def password_ops(ctx: ScanContext) -> list[Operation]:
    """The spec's "change my password" operations (not reset / forgot)."""
    return [
        op
        for op in ctx.spec.operations
        if op.method in {"POST", "PUT", "PATCH"}
        and PASSWORD_PATH.search(op.path)
        and not op.path_params
        and "reset" not in op.path
        and "forgot" not in op.path
    ]


class PasswordChange(Check):
    id = "password_change"
    title = "Password change does not require the current password"
    severity = Severity.HIGH
    owasp = Owasp.API2
    cwe = 620
    why = (
        "Whoever holds a session for a moment (an XSS, an unlocked laptop, a stolen token) "
        "can set a new password and take the account over for good."
    )
    fix = (
        "Require the current password (or a fresh re-authentication / step-up) to change "
        "the password, and revoke the user's other sessions and tokens afterwards."
    )
    phase = 2

    async def run(self, ctx: ScanContext) -> None:
        for op in password_ops(ctx):
            new_f, _old_f = fields(op)
            if new_f is None:
                continue
            for ident, recipe in ctx.login_recipes():
                pass_f = recipe.password_field
                if ident.admin or not pass_f or not recipe.password or ident.kind != "bearer":
                    continue
                temp = "Bastion-" + secrets.token_urlsafe(12)
                ctx.redactor.add(temp)
                change = await ctx.send(op.method, op.path, identity=ident, json_body={new_f: temp})
                if change is None or not change.ok:
                    return
                proof = await ctx.login(recipe, {pass_f: temp})
                # Put the original password back (the endpoint needs no current password).
                restore = {new_f: recipe.password}
                if _old_f:
                    restore[_old_f] = temp
                await ctx.send(op.method, op.path, identity=ident, json_body=restore)
                if ctx.login_token(recipe, proof) or ctx.login_cookies(proof):
                    note = (
                        f"sent only {new_f!r} as {ident.name}; logging in with the new "
                        "password then worked (the original password was restored)"
                    )
                    ctx.report(self.finding(ctx.target.url(op.path), [ctx.evidence(change, note)]))
                return
