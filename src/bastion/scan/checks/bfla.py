"""BFLA: a low-privilege user (or nobody) calls an administrator's operation.

Reads: the admin's ``GET`` as a user, then (when refused) a verb switch and
``X-HTTP-Method-Override``. Writes: the admin's update on the user's *own* object, read
back as the admin; ``GET`` operations that change state, called without credentials on
the user's own object and read back as the owner (see ``_bfla_writes``).
"""

from __future__ import annotations

import re

from bastion.scan._context import ScanContext
from bastion.scan._identity import Identity
from bastion.scan._model import Owasp, Severity
from bastion.scan._openapi import Operation
from bastion.scan._target import Exchange
from bastion.scan.checks import _bfla_writes, _objects
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
        "checked on the server for the method actually executed (ignore method overrides "
        "and verb switches); never change state on GET."
    )
    phase = 2  # the write probes change the identities' own objects (and restore them)

    async def run(self, ctx: ScanContext) -> None:
        if ctx.admins and ctx.users:
            for op in ctx.spec.operations:
                if is_admin_op(op) and op.method == "GET":
                    await self._read(ctx, op, ctx.admins[0], ctx.users[0])
            for op in ctx.spec.operations:
                if is_admin_op(op) and op.method in {"POST", "PUT", "PATCH"}:
                    await _bfla_writes.admin_write(self, ctx, op, ctx.admins[0], ctx.users[0])
        for op in _bfla_writes.state_changing_gets(ctx):
            await _bfla_writes.anonymous_state_get(self, ctx, op)

    async def _read(self, ctx: ScanContext, op: Operation, admin: Identity, user: Identity) -> None:
        profiles = await ctx.profiles()
        path = ctx.sample_path(op, profiles.get(admin.name))
        if path is None:
            return
        reference = await ctx.cached("GET", path, admin)
        if reference is None or not reference.ok or reference.json() is None:
            return
        hit = await self._as_user(ctx, op, path, user, reference)
        if hit is not None:
            ex, kind, how = hit
            note = f"{user.name} (not an admin) {how} and got the body {admin.name} gets"
            ctx.report(
                self.finding(
                    ctx.target.url(op.path),
                    [ctx.evidence(ex, note)],
                    title=f"Admin operation reachable by a regular user ({kind})",
                )
            )

    async def _as_user(
        self, ctx: ScanContext, op: Operation, path: str, user: Identity, reference: Exchange
    ) -> tuple[Exchange, str, str] | None:
        ex = await ctx.send("GET", path, identity=user)
        if ex is not None and ex.ok and _objects.same_data(ex.json(), reference.json()):
            return ex, "direct call", f"called GET {path}"
        anon = await ctx.send("GET", path)
        if anon is not None and anon.ok:
            return None  # public: not a privilege problem
        if ctx.spec.find("POST", op.path) and not ctx.options.allow_unsafe:
            return None  # a POST there might really run: only with --allow-unsafe
        tries: list[tuple[str, dict[str, str]]] = [("verb switch", {})]
        tries += [("method override", {h: "GET"}) for h in OVERRIDES]
        for kind, headers in tries:
            ex = await ctx.send("POST", path, identity=user, headers=headers)
            if ex is not None and ex.ok and _objects.same_data(ex.json(), reference.json()):
                sent = f"with {next(iter(headers))}: GET" if headers else "instead of GET"
                return ex, kind, f"sent POST {path} {sent}"
        return None
