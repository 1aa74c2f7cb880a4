"""Server software and version are announced in response headers (once per origin)."""

from __future__ import annotations

import re
import secrets

from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks import _samples
from bastion.scan.checks._base import Check

VERSIONED = re.compile(r"\d+\.\d+|/\d")
ALWAYS = ("x-powered-by", "x-aspnet-version", "x-aspnetmvc-version", "x-runtime-version")
MAYBE = ("server", "x-generator", "x-server", "via")


class VersionDisclosure(Check):
    id = "version_disclosure"
    title = "Server version disclosed in headers"
    severity = Severity.LOW
    owasp = Owasp.API8
    cwe = 497
    why = (
        "Product and version headers tell an attacker which known vulnerabilities to try, "
        "without a single probe."
    )
    fix = "Remove X-Powered-By and similar headers and strip versions from Server."
    phase = 0

    async def run(self, ctx: ScanContext) -> None:
        found = await _samples.responses(ctx)
        missing = await ctx.send("GET", f"bastion-scan-{secrets.token_hex(4)}")
        if missing is not None:
            found.append(missing)
        for ex in found:
            leaks = [f"{name}: {ex.headers[name]}" for name in ALWAYS if name in ex.headers]
            leaks += [
                f"{name}: {ex.headers[name]}"
                for name in MAYBE
                if VERSIONED.search(ex.headers.get(name, ""))
            ]
            if leaks:
                ctx.report(
                    self.finding(
                        ctx.target.origin_url,
                        [ctx.evidence(ex, "; ".join(leaks))],
                        detail="; ".join(leaks),
                    )
                )
                return
