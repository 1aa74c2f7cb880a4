"""ECDSA signatures with r = s = 0 accepted (CVE-2022-21449, "psychic signatures")."""

from __future__ import annotations

from bastion.scan import _jwt
from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks import _jwtprobe
from bastion.scan.checks._base import Check

SIZES = {"ES256": 32, "ES384": 48, "ES512": 66}


class JwtPsychicSignature(Check):
    id = "jwt_psychic_signature"
    title = "ECDSA 'psychic signature' (r = s = 0) accepted"
    severity = Severity.CRITICAL
    owasp = Owasp.API2
    cwe = 347
    why = (
        "An ECDSA verifier that does not reject r = 0 or s = 0 accepts an all-zero "
        "signature for any message: every token forges."
    )
    fix = (
        "Upgrade the crypto library (e.g. Java 15-18 before the April 2022 patch) and make "
        "sure the verifier checks 0 < r, s < n."
    )

    async def run(self, ctx: ScanContext) -> None:
        plan = await _jwtprobe.setup(ctx)
        if plan is None or plan.token.alg.upper() not in SIZES:
            return
        size = SIZES[plan.token.alg.upper()]
        body = f"{_jwt.b64u_json(plan.token.header)}.{_jwt.b64u_json(plan.payload)}"
        token = f"{body}.{_jwt.b64u(bytes(2 * size))}"
        ex = await _jwtprobe.accepted(ctx, plan, token)
        if ex is not None:
            note = _jwtprobe.describe(plan, token, "all-zero ECDSA signature")
            ctx.report(self.finding(ctx.target.url(plan.oracle), [ctx.evidence(ex, note)]))
