"""BFLA: a low-privilege user calls an administrator's operation."""

from __future__ import annotations

import re

from bastion.scan._context import ScanContext
from bastion.scan._identity import Identity
from bastion.scan._model import Owasp, Severity
from bastion.scan._openapi import Operation
from bastion.scan._target import Exchange
from bastion.scan.checks import _objects
from bastion.scan.checks._base import Check

ADMIN = re.compile(r"admin|manage|internal|staff|superuser|root", re.I)
OVERRIDES = ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override")


def is_admin_op(op: Operation) -> bool:
    text = " ".join([op.path, op.operation_id, op.summary, *op.tags])
    return bool(ADMIN.search(text))


class Bfla(Check):
    id = "bfla"
    title = "Broken function level authorization (BFLA)"
    severity = Severity.HIGH
    owasp = Owasp.API5
    cwe = 285
    why = (
        "Administrative functions are protected only by being unlisted in the client; a "
        "regular user calls them directly and gets administrator powers."
    )
    fix = (
        "Deny by default and require the admin role on every administrative route, "
        "checked on the server for the method actually executed (ignore method overrides)."
    )

    async def run(self, ctx: ScanContext) -> None:
        if not ctx.admins or not ctx.users:
            return
        admin, user = ctx.admins[0], ctx.users[0]
        profiles = await ctx.profiles()
        for op in ctx.spec.operations:
            if not is_admin_op(op) or (not op.safe and not ctx.options.allow_unsafe):
                continue
            if op.method != "GET":
                continue  # state-changing admin calls would need a read-back: not automated
            path = ctx.sample_path(op, profiles.get(admin.name))
            if path is None:
                continue
            reference = await ctx.cached("GET", path, admin)
            if reference is None or not reference.ok or reference.json() is None:
                continue
            hit = await self._as_user(ctx, op, path, user, reference)
            if hit is not None:
                ex, how = hit
                note = f"{user.name} (not an admin) {how} and got the body {admin.name} gets"
                ctx.report(self.finding(ctx.target.url(op.path), [ctx.evidence(ex, note)]))

    async def _as_user(
        self, ctx: ScanContext, op: Operation, path: str, user: Identity, reference: Exchange
    ) -> tuple[Exchange, str] | None:
        ex = await ctx.send("GET", path, identity=user)
        if ex is not None and ex.ok and _objects.same_data(ex.json(), reference.json()):
            return ex, f"called GET {path}"
        anon = await ctx.send("GET", path)
        if anon is not None and anon.ok:
            return None  # public: not a privilege problem
        if ctx.spec.find("POST", op.path) and not ctx.options.allow_unsafe:
            return None  # a POST there might really run: only with --allow-unsafe
        for header in OVERRIDES:
            ex = await ctx.send("POST", path, identity=user, headers={header: "GET"})
            if ex is not None and ex.ok and _objects.same_data(ex.json(), reference.json()):
                return ex, f"sent POST {path} with {header}: GET"
        return None
