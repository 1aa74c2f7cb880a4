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
        # The base URL, and one real operation's path: a proxy may route only API paths,
        # and pass TRACE on to a backend that echoes it.
        paths = [ctx.target.base_url]
        paths += [op.path for op in ctx.spec.operations if not op.path_params][:1]
        for path in paths:
            marker = "bastion-trace-" + secrets.token_hex(8)
            # Not an X-Bastion-* name: bastion (and proxies like it) drop client copies of
            # their identity headers, and the probe would miss an echo behind them.
            ex = await ctx.send("TRACE", path, headers={"X-Scan-Trace": marker})
            if ex is not None and ex.ok and marker in ex.text:
                note = f"TRACE {path}: the response body echoed the probe header X-Scan-Trace"
                ctx.report(self.finding(ctx.target.origin_url, [ctx.evidence(ex, note)]))
                return
