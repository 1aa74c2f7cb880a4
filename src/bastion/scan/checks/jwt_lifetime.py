"""Token lifetime is not enforced: expired tokens, tokens without ``exp``, future ``nbf``."""

from __future__ import annotations

import time

from bastion.scan import _jwt
from bastion.scan._context import ScanContext
from bastion.scan._model import Evidence, Owasp, Severity
from bastion.scan.checks import _jwtprobe
from bastion.scan.checks._base import Check

HOUR = 3600


class JwtLifetime(Check):
    id = "jwt_lifetime"
    title = "JWT lifetime not enforced"
    severity = Severity.HIGH
    owasp = Owasp.API2
    cwe = 613
    why = (
        "A token that never expires, or whose expiry is not checked, stays a working "
        "credential forever once it leaks (logs, browser history, a stolen laptop)."
    )
    fix = (
        "Issue short-lived tokens with 'exp' (RFC 7519 §4.1.4), require 'exp', and reject "
        "tokens past 'exp' or before 'nbf' with a small named clock-skew leeway."
    )

    async def run(self, ctx: ScanContext) -> None:
        plan = await _jwtprobe.setup(ctx)
        if plan is None:
            return
        endpoint = ctx.target.url(plan.oracle)
        for ident in ctx.identities:
            issued = ident.jwt
            if issued is not None and "exp" not in issued.payload:
                note = f"{ident.name}'s token has no 'exp' claim (header {issued.header})"
                ctx.report(
                    self.finding(
                        endpoint,
                        [Evidence("(token issued to the scan identity)", "(decoded)", note)],
                        title="JWT issued without an expiry ('exp')",
                        severity=Severity.MEDIUM,
                    )
                )
                break
        found = _jwtprobe.hmac_key(ctx, plan)
        if found is None:
            return  # without a signing key the claims cannot be changed honestly
        key, source = found
        now = int(time.time())
        probes = {
            "expired an hour ago": _jwtprobe.fresh_claims(
                plan.payload, exp=now - HOUR, iat=now - 2 * HOUR
            ),
            "without 'exp'": _jwtprobe.fresh_claims(plan.payload, exp=None),
            "'nbf' an hour in the future": _jwtprobe.fresh_claims(plan.payload, nbf=now + HOUR),
        }
        for what, claims in probes.items():
            token = _jwt.sign_hmac(plan.token.header, claims, key)
            ex = await _jwtprobe.accepted(ctx, plan, token)
            if ex is not None:
                note = _jwtprobe.describe(
                    plan, token, f"validly signed token {what} (key {source})"
                )
                ctx.report(
                    self.finding(endpoint, [ctx.evidence(ex, note)], title=f"JWT {what} accepted")
                )
