"""Login tells apart "no such user" from "wrong password" (by message, status or length)."""

from __future__ import annotations

import re
import secrets
import statistics

from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan._target import Exchange
from bastion.scan.checks._base import Check

_NOISE = re.compile(r"[0-9a-f]{8,}|\d+(\.\d+)?", re.I)
TIMING_GAP = 0.15  # seconds between the slowest "unknown" and fastest "known" reply


def _shape(ex: Exchange, *names: str) -> tuple[int, str]:
    text = ex.text
    for name in names:
        text = text.replace(name, "<user>")
    return ex.status, _NOISE.sub("<n>", text)


class UserEnumeration(Check):
    id = "user_enumeration"
    title = "Username enumeration on login"
    severity = Severity.MEDIUM
    owasp = Owasp.API2
    cwe = 204
    why = (
        "When login answers differently for unknown users and wrong passwords, an attacker "
        "first lists valid accounts, then sprays passwords only at those."
    )
    fix = (
        "Answer every failed login identically (status, body, headers) and in the same "
        "time: run the password hash against a dummy hash for unknown users."
    )

    async def run(self, ctx: ScanContext) -> None:
        for ident, recipe in ctx.login_recipes():
            if not recipe.user_field or not recipe.password_field or not recipe.username:
                continue
            user_f, pass_f = recipe.user_field, recipe.password_field
            known: list[Exchange] = []
            unknown: list[Exchange] = []
            ghosts = []
            for _ in range(2):
                wrong = "bastion-" + secrets.token_hex(6)
                ghost = recipe.username.split("@")[0] + "x" + secrets.token_hex(4)
                if "@" in recipe.username:
                    ghost += "@" + recipe.username.split("@", 1)[1]
                ghosts.append(ghost)
                a = await ctx.login(recipe, {pass_f: wrong})
                b = await ctx.login(recipe, {user_f: ghost, pass_f: wrong})
                if a is None or b is None or a.ok or b.ok:
                    return
                known.append(a)
                unknown.append(b)
            self._decide(ctx, recipe.path, known, unknown, [recipe.username, *ghosts], ident.name)
            return

    def _decide(
        self,
        ctx: ScanContext,
        path: str,
        known: list[Exchange],
        unknown: list[Exchange],
        names: list[str],
        who: str,
    ) -> None:
        k_shapes = {_shape(e, *names) for e in known}
        u_shapes = {_shape(e, *names) for e in unknown}
        evidence = [
            ctx.evidence(known[0], f"existing user ({who}), wrong password"),
            ctx.evidence(unknown[0], "non-existent user, wrong password"),
        ]
        # Each group must answer consistently, or the difference is noise.
        if len(k_shapes) == 1 and len(u_shapes) == 1 and k_shapes != u_shapes:
            (ks, kb), (us, ub) = next(iter(k_shapes)), next(iter(u_shapes))
            how = "status" if ks != us else "message"
            ctx.report(
                self.finding(
                    ctx.target.url(path),
                    evidence,
                    detail=f"told apart by {how}: HTTP {ks} vs {us}; "
                    f"body length {len(kb)} vs {len(ub)}",
                )
            )
            return
        k_times = [e.elapsed for e in known]
        u_times = [e.elapsed for e in unknown]
        if min(k_times) > max(u_times) + TIMING_GAP and statistics.mean(k_times) > 2 * max(u_times):
            ctx.report(
                self.finding(
                    ctx.target.url(path),
                    evidence,
                    title="Username enumeration on login by timing",
                    detail=f"known user {min(k_times):.3f}-{max(k_times):.3f}s, unknown "
                    f"{min(u_times):.3f}-{max(u_times):.3f}s",
                )
            )
