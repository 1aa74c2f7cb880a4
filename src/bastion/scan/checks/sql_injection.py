"""SQL injection in path and query parameters (error-based and boolean probes)."""

from __future__ import annotations

import re
from typing import Any

from bastion.scan._context import ScanContext
from bastion.scan._identity import Identity
from bastion.scan._model import Evidence, Owasp, Severity
from bastion.scan._openapi import Operation, Param
from bastion.scan._target import Exchange
from bastion.scan.checks._base import Check

SQL_ERRORS = re.compile(
    r"SQL syntax|sqlite3?\.|unrecognized token|syntax error at or near|unterminated quoted|"
    r"SQLSTATE|ORA-\d{5}|PG::|psycopg|pymysql|MySQLdb|ODBC|quoted string not properly terminated|"
    r"near \".*\": syntax error|incomplete input",
    re.I,
)
MAX_PARAMS = 12


class SqlInjection(Check):
    id = "sql_injection"
    title = "SQL injection"
    severity = Severity.CRITICAL
    owasp = Owasp.API8
    cwe = 89
    why = (
        "The parameter is pasted into an SQL statement, so a caller rewrites the query: "
        "read every table, bypass filters, often modify data."
    )
    fix = (
        "Use parameterised queries (bound parameters) everywhere; never build SQL by concatenation."
    )

    async def run(self, ctx: ScanContext) -> None:
        profiles = await ctx.profiles()
        ident = next(iter(ctx.users or ctx.identities), None)
        done = 0
        for op in ctx.spec.operations:
            if op.method != "GET":
                continue
            who = ident if op.secured else None
            values = self._values(op, profiles.get(ident.name) if ident else None, ctx)
            for param in [*op.path_params, *op.query_params]:
                if done >= MAX_PARAMS or param.name not in values:
                    continue
                done += 1
                hit = await self._probe(ctx, op, param, values, who)
                if hit:
                    ctx.report(
                        self.finding(
                            ctx.target.url(op.path),
                            hit,
                            detail=f"parameter {param.name!r} ({param.location})",
                        )
                    )
                    break

    def _values(self, op: Operation, prof: Any, ctx: ScanContext) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for p in [*op.path_params, *op.query_params]:
            if p.example is not None:
                values[p.name] = p.example
            elif p.location == "path":
                values[p.name] = (
                    prof.own_id
                    if prof and prof.own_id
                    else 1
                    if p.type in {"integer", "number"}
                    else "1"
                )
            elif p.required:
                values[p.name] = 1 if p.type in {"integer", "number"} else "test"
        return values

    async def _get(
        self,
        ctx: ScanContext,
        op: Operation,
        values: dict[str, Any],
        param: Param,
        value: str,
        who: Identity | None,
    ) -> Exchange | None:
        vals = {**values, param.name: value}
        path_vals = {p.name: str(vals[p.name]).replace("/", "%2F") for p in op.path_params}
        path = op.fill(path_vals)
        query = {p.name: str(vals[p.name]) for p in op.query_params if p.name in vals}
        return await ctx.send("GET", path or op.path, identity=who, params=query or None)

    async def _probe(
        self,
        ctx: ScanContext,
        op: Operation,
        param: Param,
        values: dict[str, Any],
        who: Identity | None,
    ) -> list[Evidence]:
        original = str(values[param.name])
        base = await self._get(ctx, op, values, param, original, who)
        if base is None or SQL_ERRORS.search(base.text):
            return []
        for suffix in ("'", '"'):
            ex = await self._get(ctx, op, values, param, original + suffix, who)
            if ex is not None and SQL_ERRORS.search(ex.text) and not ex.ok:
                m = SQL_ERRORS.search(ex.text)
                return [
                    ctx.evidence(
                        ex,
                        f"a trailing {suffix} drew a database error "
                        f"({m.group(0) if m else ''!r}); the plain value did not",
                    )
                ]
        numeric = original.lstrip("-").isdigit()
        pairs = [(f"{original} AND 1=1", f"{original} AND 1=2")] if numeric else []
        pairs.append((f"{original}' AND '1'='1", f"{original}' AND '1'='2"))
        for true_v, false_v in pairs:
            t = await self._get(ctx, op, values, param, true_v, who)
            f = await self._get(ctx, op, values, param, false_v, who)
            again = await self._get(ctx, op, values, param, original, who)
            if None in (t, f, again) or not base.ok:
                continue
            if t and f and again and t.body == base.body == again.body and f.body != base.body:
                note = (
                    f"{param.name}={true_v!r} returned exactly the original answer and "
                    f"{false_v!r} a different one: the condition ran as SQL"
                )
                return [ctx.evidence(t, note), ctx.evidence(f, "the false condition")]
        return []
