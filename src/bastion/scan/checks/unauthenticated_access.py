"""Protected operations answer without a credential, or with a garbage one."""

from __future__ import annotations

from bastion.scan._context import ScanContext, leaves
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks._base import Check

PROBES: tuple[tuple[str, dict[str, str]], ...] = (
    ("no credential", {}),
    ("a garbage bearer token", {"Authorization": "Bearer bastion.scan.garbage"}),
)


def _same_data(a: object, b: object) -> bool:
    """Both bodies carry the same (non-trivial) values: the protected data came back."""
    va = {str(v) for _k, v in leaves(a) if v not in (None, "", True, False)}
    vb = {str(v) for _k, v in leaves(b) if v not in (None, "", True, False)}
    return bool(va) and va == vb


class UnauthenticatedAccess(Check):
    id = "unauthenticated_access"
    title = "Protected operation answers without valid credentials"
    severity = Severity.HIGH
    owasp = Owasp.API2
    cwe = 306
    why = (
        "The API's own document says this operation needs authentication, yet it returns "
        "the same data to a caller with no credential (or a made-up one)."
    )
    fix = (
        "Authenticate in one place in front of every route (a gateway or middleware that "
        "denies by default); mark public routes explicitly."
    )

    async def run(self, ctx: ScanContext) -> None:
        if not ctx.identities:
            return
        profiles = await ctx.profiles()
        ident = ctx.users[0] if ctx.users else ctx.identities[0]
        for op in ctx.spec.operations:
            if not op.secured or not op.safe or op.method != "GET":
                continue
            path = ctx.sample_path(op, profiles.get(ident.name))
            if path is None:
                continue
            base = await ctx.cached("GET", path, ident)
            if base is None or not base.ok or base.json() is None:
                continue
            for what, headers in PROBES:
                ex = await ctx.send("GET", path, headers=headers)
                if ex is not None and ex.ok and _same_data(ex.json(), base.json()):
                    note = f"with {what}, {op.key} returned the data {ident.name} gets"
                    ctx.report(self.finding(ctx.target.url(path), [ctx.evidence(ex, note)]))
                    break
