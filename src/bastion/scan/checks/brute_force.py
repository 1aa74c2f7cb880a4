"""Login has no brute-force protection: failures never slow it, and the password still works."""

from __future__ import annotations

import re
import secrets

from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan._target import Exchange
from bastion.scan.checks._base import Check

_THROTTLED = re.compile(r"too many|locked|lockout|try again|captcha|rate limit", re.I)


def throttled(ex: Exchange) -> bool:
    """Whether a failed login was slowed down or refused.

    ``RateLimit`` headers alone do not count: a gateway's general per-address quota
    (thousands a minute) advertises them on every answer, yet lets a password list
    through; only a refusal (423/429/503, or a lockout/captcha message) does.
    """
    if ex.status in {423, 429, 503}:
        return True
    return bool(_THROTTLED.search(ex.text[:2000]))


class BruteForce(Check):
    id = "brute_force"
    title = "No brute-force protection on login"
    severity = Severity.HIGH
    owasp = Owasp.API2
    cwe = 307
    why = (
        "Unlimited password guesses let an attacker try a password list against an "
        "account (or one password against every account) until one works."
    )
    fix = (
        "Throttle failed logins per account and per client (429 with Retry-After, growing "
        "delays, a temporary lock), and alert on bursts of failures."
    )
    phase = 3

    async def run(self, ctx: ScanContext) -> None:
        attempts = ctx.options.brute_force_attempts
        for ident, recipe in ctx.login_recipes():
            pass_f = recipe.password_field
            if not pass_f or not recipe.password:
                continue
            last: Exchange | None = None
            for _ in range(attempts):
                last = await ctx.login(recipe, {pass_f: "bastion-" + secrets.token_hex(6)})
                if last is None or last.ok or throttled(last):
                    return
            good = await ctx.login(recipe)
            if last is None or good is None:
                return
            if ctx.login_token(recipe, good) or ctx.login_cookies(good):
                note = (
                    f"{attempts} wrong passwords for {ident.name} drew no 429, lock or "
                    "Retry-After; the right password then still logged in"
                )
                ctx.report(
                    self.finding(
                        ctx.target.url(recipe.path),
                        [
                            ctx.evidence(last, f"failure {attempts} of {attempts}"),
                            ctx.evidence(good, note),
                        ],
                    )
                )
            return
