"""Unsigned JWTs (``alg: none`` in any letter case) are accepted."""

from __future__ import annotations

from bastion.scan import _jwt
from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks import _jwtprobe
from bastion.scan.checks._base import Check

VARIANTS = ("none", "None", "NONE", "nOnE")


class JwtAlgNone(Check):
    id = "jwt_alg_none"
    title = "JWT with alg 'none' accepted"
    severity = Severity.CRITICAL
    owasp = Owasp.API2
    cwe = 347
    why = (
        "RFC 7518 §3.6 'none' means no signature at all. Accepting it lets anyone mint "
        "tokens for any user."
    )
    fix = (
        "Pin the accepted algorithms to the ones your issuer uses (e.g. ES256 or RS256) "
        "and reject every other 'alg', 'none' above all, whatever its letter case."
    )

    async def run(self, ctx: ScanContext) -> None:
        plan = await _jwtprobe.setup(ctx)
        if plan is None:
            return
        evidence = []
        for alg in VARIANTS:
            header = {**plan.token.header, "alg": alg}
            header.pop("kid", None)
            token = _jwt.unsigned(header, plan.payload)
            ex = await _jwtprobe.accepted(ctx, plan, token)
            if ex is not None:
                evidence.append(ctx.evidence(ex, _jwtprobe.describe(plan, token, f"alg {alg!r}")))
                if len(evidence) >= 2:
                    break
        if evidence:
            ctx.report(self.finding(ctx.target.url(plan.oracle), evidence))
