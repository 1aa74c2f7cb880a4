"""ReDoS: a timing ladder on string parameters; reply time explodes with input length."""

from __future__ import annotations

from bastion.scan._context import ScanContext
from bastion.scan._identity import Identity
from bastion.scan._model import Owasp, Severity
from bastion.scan._target import Exchange
from bastion.scan.checks._base import Check

LADDER = (12, 16, 19, 21, 23, 24, 25)
SLOW = 0.8  # seconds: a reply this slow on ~25 characters is not normal work
PROBE_TIMEOUT = 4.0
MAX_PARAMS = 4


class Redos(Check):
    id = "redos"
    title = "Regular expression denial of service (ReDoS)"
    severity = Severity.MEDIUM
    owasp = Owasp.API4
    cwe = 1333
    why = (
        "A backtracking regular expression takes exponential time on a crafted string of a "
        "few dozen characters; a handful of requests then pins every worker's CPU."
    )
    fix = (
        "Rewrite the pattern without nested quantifiers (or use a linear-time engine such "
        "as RE2), and cap input length before matching."
    )
    phase = 3

    async def run(self, ctx: ScanContext) -> None:
        ident = next(iter(ctx.users or ctx.identities), None)
        tried = 0
        for op in ctx.spec.operations:
            if op.method != "GET" or op.path_params:
                continue
            for param in op.query_params:
                if param.type != "string" or tried >= MAX_PARAMS:
                    continue
                tried += 1
                if await self._ladder(ctx, op.path, param.name, ident):
                    return

    async def _ladder(self, ctx: ScanContext, path: str, name: str, who: Identity | None) -> bool:
        times: list[tuple[int, float]] = []
        for n in LADDER:
            evil = await ctx.send(
                "GET", path, identity=who, params={name: "a" * n + "!"}, timeout=PROBE_TIMEOUT
            )
            took = evil.elapsed if evil is not None else PROBE_TIMEOUT
            times.append((n, took))
            if took < SLOW:
                continue
            control = await ctx.send(
                "GET", path, identity=who, params={name: "a" * (n + 1)}, timeout=PROBE_TIMEOUT
            )
            base = control.elapsed if control is not None else PROBE_TIMEOUT
            growing = len(times) >= 3 and times[-3][1] * 4 < took
            if base * 10 < took and growing:
                self._report(ctx, path, name, times, base, evil)
                return True
            return False  # slow for any input: not a pattern problem; stop climbing
        return False

    def _report(
        self,
        ctx: ScanContext,
        path: str,
        name: str,
        times: list[tuple[int, float]],
        base: float,
        evil: Exchange | None,
    ) -> None:
        ladder = ", ".join(f"{n + 1} chars: {t:.2f}s" for n, t in times)
        note = (
            f"?{name}=aaa…a! ladder: {ladder}; the same length without the final '!' "
            f"took {base:.2f}s (the ladder stopped there)"
        )
        evidence = [ctx.evidence(evil, note)] if evil is not None else []
        ctx.report(self.finding(ctx.target.url(path), evidence, detail=note))
