"""A token still works after the user logged out."""

from __future__ import annotations

import re

from bastion.scan._context import ScanContext
from bastion.scan._identity import Identity
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks._base import Check

LOGOUT = re.compile(r"(log|sign)[_-]?out|/revoke$", re.I)


class TokenAfterLogout(Check):
    id = "token_after_logout"
    title = "Token still valid after logout"
    severity = Severity.MEDIUM
    owasp = Owasp.API2
    cwe = 613
    why = (
        "Logging out must end the session. If the server forgets only the cookie, a token "
        "copied before (from a shared computer, a log, malware) keeps working."
    )
    fix = (
        "Revoke the token (or its session / refresh family) on logout, and check the "
        "revocation list on every request; keep access tokens short-lived."
    )
    phase = 2

    async def run(self, ctx: ScanContext) -> None:
        logout = next(
            (
                op
                for op in [*ctx.spec.operations, *ctx.spec.actions]
                if op.method in {"POST", "GET", "DELETE"}
                and LOGOUT.search(op.path)
                and not op.path_params
            ),
            None,
        )
        profiles = await ctx.profiles()
        if logout is None or not profiles:
            return
        for ident, recipe in ctx.login_recipes():
            if ident.name not in profiles:
                continue
            # A fresh login of its own: the scan's identities stay logged in.
            login = await ctx.login(recipe)
            token = ctx.login_token(recipe, login)
            if not token:
                continue
            cookies = ctx.login_cookies(login)
            fresh = Identity(ident.name, "bearer", token, cookies=cookies, login=recipe)
            oracle = profiles[ident.name].path
            if not await ctx.shows(await ctx.send("GET", oracle, identity=fresh), ident):
                continue
            headers = dict(fresh.headers())
            if cookies:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
            out = await ctx.send(logout.method, logout.path, headers=headers)
            if out is None or not out.ok:
                continue
            after = await ctx.send("GET", oracle, identity=fresh)
            if after is not None and await ctx.shows(after, ident):
                note = (
                    f"logged in afresh as {ident.name}, logged out ({logout.key} answered "
                    f"{out.status}), then the same token still read {oracle}"
                )
                ctx.report(
                    self.finding(
                        ctx.target.url(logout.path),
                        [ctx.evidence(out, "the logout"), ctx.evidence(after, note)],
                    )
                )
            return
