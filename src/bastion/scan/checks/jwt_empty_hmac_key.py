"""JWTs signed with HMAC and an empty key are accepted."""

from __future__ import annotations

from bastion.scan import _jwt
from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks import _jwtprobe
from bastion.scan.checks._base import Check


class JwtEmptyHmacKey(Check):
    id = "jwt_empty_hmac_key"
    title = "JWT signed with an empty HMAC key accepted"
    severity = Severity.CRITICAL
    owasp = Owasp.API2
    cwe = 347
    why = (
        "A verifier that falls back to an empty key (a missing setting, an unset "
        "environment variable) accepts tokens anyone can sign."
    )
    fix = (
        "Fail at start-up when the signing key is missing or short; never verify with a "
        "default or empty key."
    )

    async def run(self, ctx: ScanContext) -> None:
        plan = await _jwtprobe.setup(ctx)
        if plan is None:
            return
        header = {**plan.token.header, "alg": "HS256"}
        token = _jwt.sign_hmac(header, plan.payload, b"")
        ex = await _jwtprobe.accepted(ctx, plan, token)
        if ex is not None:
            note = _jwtprobe.describe(plan, token, "HS256 signed with an empty key")
            ctx.report(self.finding(ctx.target.url(plan.oracle), [ctx.evidence(ex, note)]))
