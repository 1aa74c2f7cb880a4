"""The verifier trusts keys named by the token itself: embedded ``jwk``, ``jku`` or ``x5u``."""

from __future__ import annotations

import json
from typing import Any

from bastion.scan._context import ScanContext
from bastion.scan._model import Evidence, Owasp, Severity
from bastion.scan.checks import _jwtprobe
from bastion.scan.checks._base import Check


class JwtHeaderInjection(Check):
    id = "jwt_header_injection"
    title = "JWT verified with a key the token supplies (jwk / jku / x5u)"
    severity = Severity.CRITICAL
    owasp = Owasp.API2
    cwe = 347
    why = (
        "If the verifier uses a key embedded in the token (jwk) or fetched from a URL in "
        "it (jku, x5u), an attacker signs with their own key and is accepted; a fetched "
        "URL also lets them make the server send requests (SSRF)."
    )
    fix = (
        "Take verification keys only from configuration or the issuer's pinned JWKS URL; "
        "ignore jwk, jku and x5u in incoming tokens (or allow-list exact URLs)."
    )

    async def run(self, ctx: ScanContext) -> None:
        plan = await _jwtprobe.setup(ctx)
        if plan is None:
            return
        attacker = ctx.attacker_key
        jwks_url = ctx.canary.publish(
            "application/json", json.dumps({"keys": [attacker.jwk()]}).encode(), ".json"
        )
        cert_url = ctx.canary.publish(
            "application/pkix-cert", attacker.self_signed_cert_pem(), ".pem"
        )
        base = {"typ": "JWT", "alg": "RS256", "kid": attacker.kid}
        probes: dict[str, tuple[dict[str, Any], str | None]] = {
            "embedded jwk": ({**base, "jwk": attacker.jwk()}, None),
            "jku pointing at the scanner's canary": ({**base, "jku": jwks_url}, jwks_url),
            "x5u pointing at the scanner's canary": ({**base, "x5u": cert_url}, cert_url),
        }
        evidence: list[Evidence] = []
        fetched_only: list[str] = []
        for what, (header, url) in probes.items():
            token = attacker.sign(header, plan.payload)
            ex = await _jwtprobe.accepted(ctx, plan, token)
            if ex is not None:
                evidence.append(ctx.evidence(ex, _jwtprobe.describe(plan, token, what)))
            elif url and ctx.canary.fetched(url):
                fetched_only.append(f"{what}: the target fetched {url}")
        endpoint = ctx.target.url(plan.oracle)
        if evidence:
            ctx.report(self.finding(endpoint, evidence))
        elif fetched_only:
            note = "; ".join(fetched_only) + " (the token was then refused)"
            ctx.report(
                self.finding(
                    endpoint,
                    [Evidence("(see note)", "(canary hit recorded)", note)],
                    title="JWT header URL (jku/x5u) fetched by the server",
                    severity=Severity.MEDIUM,
                )
            )
