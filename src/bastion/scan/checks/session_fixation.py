"""Session fixation: a session id chosen before login is still the session after it."""

from __future__ import annotations

import secrets

from bastion.scan._context import ScanContext
from bastion.scan._identity import Identity, cookies_from
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks._base import Check


class SessionFixation(Check):
    id = "session_fixation"
    title = "Session fixation: session id not renewed at login"
    severity = Severity.HIGH
    owasp = Owasp.API2
    cwe = 384
    why = (
        "If login keeps a session id the client brought, an attacker who planted that id "
        "(a link, a sub-domain cookie) is logged in as the victim once the victim logs in."
    )
    fix = "Issue a brand-new session id at every login (and privilege change); drop the old one."
    phase = 2

    async def run(self, ctx: ScanContext) -> None:
        profiles = await ctx.profiles()
        for ident, recipe in ctx.login_recipes():
            if not ident.cookies or ident.name not in profiles:
                continue
            name = next(iter(ident.cookies))
            planted = secrets.token_hex(16)
            ex = await ctx.login(recipe, headers={"Cookie": f"{name}={planted}"})
            if ex is None or not ex.ok:
                continue
            issued = cookies_from(ex.set_cookies).get(name)
            if issued is not None and issued != planted:
                return  # a new id was issued: fine
            fixed = Identity(ident.name, "cookie", cookies={name: planted})
            after = await ctx.send("GET", profiles[ident.name].path, identity=fixed)
            if after is not None and await ctx.shows(after, ident):
                note = (
                    f"planted cookie {name}=<chosen by the scanner> before login; login "
                    f"kept it, and it then read {ident.name}'s profile"
                )
                ctx.report(
                    self.finding(
                        ctx.target.url(recipe.path),
                        [
                            ctx.evidence(ex, "login with the planted cookie"),
                            ctx.evidence(after, note),
                        ],
                    )
                )
            return
