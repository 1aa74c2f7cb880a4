"""HTTP TRACE is enabled and echoes the request (cross-site tracing), once per origin."""

from __future__ import annotations

import secrets

from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks._base import Check


class TraceMethod(Check):
    id = "trace_method"
    title = "HTTP TRACE enabled"
    severity = Severity.MEDIUM
    owasp = Owasp.API8
    cwe = 693
    why = (
        "TRACE echoes the request back, headers included; with another flaw it exposes "
        "cookies and Authorization headers that scripts could not read otherwise."
    )
    fix = "Disable TRACE (and TRACK) on the server and any proxy in front of it."
    phase = 0
    depends_on_answers = ""

    async def run(self, ctx: ScanContext) -> None:
        marker = "bastion-trace-" + secrets.token_hex(8)
        ex = await ctx.send("TRACE", ctx.target.base_url, headers={"X-Bastion-Trace": marker})
        if ex is not None and ex.ok and marker in ex.text:
            note = "the response body echoed the probe header X-Bastion-Trace"
            ctx.report(self.finding(ctx.target.origin_url, [ctx.evidence(ex, note)]))
