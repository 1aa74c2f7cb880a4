"""CSRF: a cookie-authenticated state change is accepted from a foreign origin."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks._base import Check
from bastion.scan.checks.cookie_flags import sent_cross_site

EVIL = "https://evil.bastion-scan.invalid"  # a header value only
SKIP = ("pass", "email", "role", "admin", "id", "token", "user", "login")


class Csrf(Check):
    id = "csrf"
    title = "Cross-site request forgery on a cookie-authenticated change"
    severity = Severity.HIGH
    owasp = Owasp.API8
    cwe = 352
    why = (
        "A page on any site can submit a form to the API; the browser attaches the "
        "victim's session cookie, and the change is made in the victim's name."
    )
    fix = (
        "Use SameSite=Lax/Strict session cookies, and require a CSRF token or a verified "
        "Origin header on every state-changing request authenticated by cookie."
    )
    phase = 2

    async def run(self, ctx: ScanContext) -> None:
        profiles = await ctx.profiles()
        for ident in ctx.users:
            jar = ident.cookie_only()
            prof = profiles.get(ident.name)
            if jar is None or prof is None:
                continue
            if not sent_cross_site(ctx, jar):
                return  # the browser would not send them cross-site
            before = await ctx.send("GET", prof.path, identity=jar)
            if not await ctx.shows(before, ident) or before is None:
                return  # the cookie alone does not authenticate: no CSRF surface
            data = before.json()
            field = next(
                (
                    k
                    for k, v in data.items()
                    if isinstance(v, str) and not any(s in k.lower() for s in SKIP)
                ),
                None,
            )
            op = ctx.spec.find("POST", prof.path)
            if field is None or op is None:
                return
            marker = "bastion-csrf-" + secrets.token_hex(4)
            # What a plain HTML form on another site would send: no preflight.
            sent = await ctx.send(
                "POST",
                prof.path,
                identity=jar,
                content=urlencode({field: marker}),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Origin": EVIL,
                    "Referer": EVIL + "/",
                },
            )
            after = await ctx.send("GET", prof.path, identity=jar)
            if sent is None or after is None or marker not in after.text:
                return
            await ctx.send("POST", prof.path, identity=ident, json_body={field: data[field]})
            note = (
                f"a form POST with only {ident.name}'s cookie and Origin {EVIL} changed "
                f"{field!r}; reading back showed the scanner's marker (value restored)"
            )
            ctx.report(
                self.finding(
                    ctx.target.url(prof.path),
                    [
                        ctx.evidence(sent, "the cross-site form post"),
                        ctx.evidence(after, note),
                    ],
                )
            )
            return
