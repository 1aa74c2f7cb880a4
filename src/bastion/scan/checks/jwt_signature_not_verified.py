"""JWTs whose signature is tampered with or stripped are still accepted."""

from __future__ import annotations

from bastion.scan import _jwt
from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks import _jwtprobe
from bastion.scan.checks._base import Check


class JwtSignatureNotVerified(Check):
    id = "jwt_signature_not_verified"
    title = "JWT signature is not verified"
    severity = Severity.CRITICAL
    owasp = Owasp.API2
    cwe = 347
    why = (
        "The API trusts a token's claims without checking its signature, so anyone can "
        "write their own token and act as any user."
    )
    fix = (
        "Verify every token's signature with the issuer's key before reading a claim; use "
        "a maintained JOSE library with an explicit algorithm allow-list."
    )

    async def run(self, ctx: ScanContext) -> None:
        plan = await _jwtprobe.setup(ctx)
        if plan is None:
            return
        header = plan.token.header
        body = f"{_jwt.b64u_json(header)}.{_jwt.b64u_json(plan.payload)}"
        flipped = bytes(b ^ 0x5A for b in plan.token.signature) or b"\x00" * 32
        probes = {
            "tampered signature": f"{body}.{_jwt.b64u(flipped)}",
            "stripped signature (header.payload.)": f"{body}.",
        }
        evidence = []
        for what, token in probes.items():
            ex = await _jwtprobe.accepted(ctx, plan, token)
            if ex is not None:
                evidence.append(ctx.evidence(ex, _jwtprobe.describe(plan, token, what)))
        if evidence:
            ctx.report(self.finding(ctx.target.url(plan.oracle), evidence))
