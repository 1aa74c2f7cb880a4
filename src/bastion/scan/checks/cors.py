"""CORS reflects an arbitrary (or 'null') Origin, with credentials (once per origin)."""

from __future__ import annotations

from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks import _samples
from bastion.scan.checks._base import Check

EVIL = "https://evil.bastion-scan.invalid"  # only ever sent as a header value


class Cors(Check):
    id = "cors"
    title = "CORS allows any origin with credentials"
    severity = Severity.HIGH
    owasp = Owasp.API8
    cwe = 942
    why = (
        "A site the attacker controls can call the API from a victim's browser with the "
        "victim's cookies and read the answers."
    )
    fix = (
        "Allow only an explicit list of trusted origins; never reflect the Origin header "
        "or allow 'null' together with Access-Control-Allow-Credentials."
    )
    phase = 0

    async def run(self, ctx: ScanContext) -> None:
        sample = await _samples.authenticated(ctx)
        path = sample.url if sample is not None else ctx.target.base_url
        ident = next(iter(ctx.users or ctx.identities), None)
        for origin in (EVIL, "null"):
            ex = await ctx.send("GET", path, identity=ident, headers={"Origin": origin})
            if ex is None:
                return
            allowed = ex.headers.get("access-control-allow-origin", "")
            creds = ex.headers.get("access-control-allow-credentials", "").lower() == "true"
            if allowed == origin:
                note = f"Origin: {origin} was reflected" + (
                    " with credentials allowed" if creds else ""
                )
                ctx.report(
                    self.finding(
                        ctx.target.origin_url,
                        [ctx.evidence(ex, note)],
                        title=self.title if creds else "CORS reflects any origin (no credentials)",
                        severity=self.severity if creds else Severity.LOW,
                    )
                )
                return
