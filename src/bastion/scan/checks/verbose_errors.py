"""Malformed input draws stack traces, SQL errors or debugger pages (once per origin)."""

from __future__ import annotations

import re

from bastion.scan._context import ScanContext
from bastion.scan._identity import Identity
from bastion.scan._model import Evidence, Owasp, Severity
from bastion.scan._target import Exchange
from bastion.scan.checks._base import Check

SIGNS = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+|"
    r"\bat [\w$.]+\([\w]+\.java:\d+\)|Exception in thread|System\.[\w.]*Exception|"
    r"at .+ \(.+\.(?:js|ts):\d+:\d+\)|goroutine \d+ \[running\]|\.php on line \d+|"
    r"Werkzeug Debugger|Whoops!|DEBUG = True|"
    r"(?:sqlite3|psycopg2?|pymysql|MySQLdb|sqlalchemy)\.[\w.]*(?:Error|Exception)|"
    r"SQLSTATE\[|You have an error in your SQL syntax|ORA-\d{5}|unrecognized token:|"
    r"PG::\w+Error|Microsoft OLE DB|syntax error at or near",
)
BAD_VALUE = "bastion'\"<>%00{{"


class VerboseErrors(Check):
    id = "verbose_errors"
    title = "Verbose error messages with internals"
    severity = Severity.MEDIUM
    owasp = Owasp.API8
    cwe = 209
    why = (
        "Stack traces and database errors reveal file paths, library versions, queries and "
        "sometimes data; they map the attack surface and often confirm an injection."
    )
    fix = (
        "Catch every exception at the edge and answer a generic problem+json (RFC 9457) "
        "with a correlation id; log the details server-side only; never run a debugger in "
        "production."
    )

    async def run(self, ctx: ScanContext) -> None:
        ident = next(iter(ctx.users or ctx.identities), None)
        evidence: list[Evidence] = []
        for op in ctx.spec.operations:
            if len(evidence) >= 2:
                break
            ex = await self._probe(
                ctx, op.method, op.path, bool(op.path_params), op.body_schema is not None, ident
            )
            if ex is not None and SIGNS.search(ex.text):
                match = SIGNS.search(ex.text)
                evidence.append(
                    ctx.evidence(
                        ex, f"{op.key}: response contains {match.group(0) if match else ''!r}"
                    )
                )
        if evidence:
            ctx.report(self.finding(ctx.target.origin_url, evidence))

    async def _probe(
        self,
        ctx: ScanContext,
        method: str,
        path: str,
        has_params: bool,
        has_body: bool,
        who: Identity | None,
    ) -> Exchange | None:
        if has_params:
            filled = re.sub(r"\{[^}/]+\}", BAD_VALUE.replace("%", "%25"), path)
            if method == "GET":
                return await ctx.send("GET", filled, identity=who)
            return None
        if method in {"POST", "PUT", "PATCH"} and has_body:
            # Broken JSON is refused before any handler can act on it: no state changes.
            return await ctx.send(
                method,
                path,
                identity=who,
                content='{"bastion": ',
                headers={"Content-Type": "application/json"},
            )
        return None
