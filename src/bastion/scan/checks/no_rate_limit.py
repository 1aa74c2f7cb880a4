"""No rate limit at all: a bounded burst draws no 429 and no RateLimit headers."""

from __future__ import annotations

from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan._target import Exchange
from bastion.scan.checks._base import Check


def advertises_limit(ex: Exchange) -> bool:
    names = {h.lower() for h in ex.headers}
    return bool(
        names
        & {
            "ratelimit",
            "ratelimit-policy",
            "ratelimit-limit",
            "retry-after",
            "x-ratelimit-limit",
            "x-rate-limit-limit",
        }
    )


class NoRateLimit(Check):
    id = "no_rate_limit"
    title = "No rate limiting"
    severity = Severity.MEDIUM
    owasp = Owasp.API4
    cwe = 770
    why = (
        "Without a limit one client can exhaust the API (and its database and bill), scrape "
        "all data, or guess ids and secrets at full speed."
    )
    fix = (
        "Limit requests per client and per principal (429 with Retry-After), and advertise "
        "the policy with RateLimit headers."
    )
    phase = 3

    async def run(self, ctx: ScanContext) -> None:
        ident = next(iter(ctx.users or ctx.identities), None)
        profiles = await ctx.profiles()
        skip = {p.path for p in profiles.values()}
        op = next(
            (
                o
                for o in ctx.spec.operations
                if o.method == "GET" and not o.path_params and o.path not in skip
            ),
            None,
        )
        path = op.path if op else ctx.target.base_url
        first: Exchange | None = None
        last: Exchange | None = None
        for _ in range(ctx.options.burst_size):
            last = await ctx.send("GET", path, identity=ident)
            if last is None:
                return
            first = first or last
            if last.status in {429, 503} or advertises_limit(last):
                return
        if first is None or last is None or not first.ok:
            return
        note = (
            f"{ctx.options.burst_size} requests to {path} at the scan's rate: no 429, "
            "no RateLimit or Retry-After header"
        )
        ctx.report(self.finding(ctx.target.origin_url, [ctx.evidence(last, note)]))
