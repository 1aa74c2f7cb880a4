"""Collections come back whole: no pagination, and a requested limit is ignored."""

from __future__ import annotations

from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks import _objects
from bastion.scan.checks._base import Check

BIG = 100
LIMIT_PARAMS = ("limit", "per_page", "page_size", "pageSize", "size", "count", "max")


class Pagination(Check):
    id = "pagination"
    title = "Unbounded collection (no pagination)"
    severity = Severity.LOW
    owasp = Owasp.API4
    cwe = 770
    why = (
        "A listing that always returns everything grows with the data: one call costs "
        "the server memory and time, and a few calls in parallel take it down."
    )
    fix = "Paginate every collection with a server-side maximum page size (and a 'next' link)."

    async def run(self, ctx: ScanContext) -> None:
        ident = next(iter(ctx.users or ctx.identities), None)
        for op in ctx.spec.operations:
            if op.method != "GET" or op.path_params:
                continue
            ex = await ctx.cached("GET", op.path, ident)
            data = ex.json() if ex is not None and ex.ok else None
            rows = _objects.items(data)
            if ex is None or len(rows) <= BIG or "link" in ex.headers:
                continue
            declared = {p.name for p in op.query_params}
            param = next((p for p in LIMIT_PARAMS if p in declared), "limit")
            capped = await ctx.send("GET", op.path, identity=ident, params={param: "10"})
            again = _objects.items(capped.json()) if capped is not None and capped.ok else []
            if capped is not None and len(again) > BIG:
                note = f"{len(rows)} objects in one reply; ?{param}=10 still returned {len(again)}"
                ctx.report(self.finding(ctx.target.url(op.path), [ctx.evidence(capped, note)]))
