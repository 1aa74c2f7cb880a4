"""Security response headers an API should send are missing (once per origin)."""

from __future__ import annotations

from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks import _samples
from bastion.scan.checks._base import Check


class SecurityHeaders(Check):
    id = "security_headers"
    title = "Missing security headers"
    severity = Severity.LOW
    owasp = Owasp.API8
    cwe = 693
    why = (
        "Without nosniff a browser may run an API response as script; without no-store, "
        "authenticated data stays in shared caches; without frame protection the API's "
        "pages can be framed for clickjacking."
    )
    fix = (
        "Send 'X-Content-Type-Options: nosniff', 'Cache-Control: no-store' on authenticated "
        "responses, and \"Content-Security-Policy: frame-ancestors 'none'\" (or "
        "'X-Frame-Options: DENY') on every response."
    )
    phase = 0

    async def run(self, ctx: ScanContext) -> None:
        sample = await _samples.authenticated(ctx)
        if sample is None:
            found = await _samples.responses(ctx)
            sample = found[0] if found else None
        if sample is None:
            return
        h = sample.headers
        missing = []
        if h.get("x-content-type-options", "").lower() != "nosniff":
            missing.append("X-Content-Type-Options: nosniff")
        if "frame-ancestors" not in h.get("content-security-policy", "") and (
            h.get("x-frame-options", "").upper() not in {"DENY", "SAMEORIGIN"}
        ):
            missing.append("frame protection (CSP frame-ancestors or X-Frame-Options)")
        authed = any(
            k.lower() in {"authorization", "cookie"} or "key" in k.lower()
            for k in sample.request_headers
        )
        cache = h.get("cache-control", "").lower()
        if authed and "no-store" not in cache and "private" not in cache:
            missing.append("Cache-Control: no-store (authenticated response)")
        if missing:
            ctx.report(
                self.finding(
                    ctx.target.origin_url,
                    [ctx.evidence(sample, "missing: " + "; ".join(missing))],
                    detail="; ".join(missing),
                )
            )
