"""Mass assignment: privilege fields sent in an update are stored (read back to prove it)."""

from __future__ import annotations

from typing import Any

from bastion.scan._context import Profile, ScanContext
from bastion.scan._identity import Identity
from bastion.scan._model import Owasp, Severity
from bastion.scan._openapi import Operation
from bastion.scan.checks._base import Check

PRIVILEGED: dict[str, Any] = {"role": "admin", "is_admin": True, "isAdmin": True, "admin": True}
SKIP_FIELDS = ("pass", "email", "role", "admin", "id", "user", "login", "token")


def self_update_ops(ctx: ScanContext, prof: Profile) -> list[tuple[Operation, str]]:
    """Update operations on the caller's own object, with their filled paths."""
    out = []
    for op in ctx.spec.operations:
        if op.method not in {"PATCH", "PUT", "POST"} or op.body_media != "application/json":
            continue
        if op.path == prof.path:
            out.append((op, op.path))
        elif (
            len(op.path_params) == 1
            and prof.own_id
            and op.path.startswith(prof.path.rsplit("/", 1)[0])
        ):
            filled = op.fill({op.path_params[0].name: prof.own_id})
            if filled:
                out.append((op, filled))
    out.sort(key=lambda pair: ("PATCH", "PUT", "POST").index(pair[0].method))
    return out


class MassAssignment(Check):
    id = "mass_assignment"
    title = "Mass assignment of privileged fields"
    severity = Severity.HIGH
    owasp = Owasp.API3
    cwe = 915
    why = (
        "The API copies every field of the request into the object, so a user sets fields "
        "they must not control - their role, admin flag, or owning account."
    )
    fix = (
        "Bind requests to an explicit allow-list of writable fields per operation (a "
        "separate input schema), never straight onto the stored model."
    )
    phase = 2

    async def run(self, ctx: ScanContext) -> None:
        profiles = await ctx.profiles()
        for ident in ctx.users:
            prof = profiles.get(ident.name)
            if prof is None:
                continue
            for op, path in self_update_ops(ctx, prof)[:2]:
                if await self._probe(ctx, ident, prof, op, path):
                    return
            return

    async def _probe(
        self, ctx: ScanContext, ident: Identity, prof: Profile, op: Operation, path: str
    ) -> bool:
        before_ex = await ctx.send("GET", prof.path, identity=ident)
        before = before_ex.json() if before_ex is not None and before_ex.ok else None
        if not isinstance(before, dict):
            return False
        inject = {k: v for k, v in PRIVILEGED.items() if before.get(k) != v}
        body: dict[str, Any] = dict(inject)
        for key, value in before.items():  # one ordinary field, unchanged, to look normal
            if isinstance(value, str) and not any(s in key.lower() for s in SKIP_FIELDS):
                body[key] = value
                break
        sent = await ctx.send(op.method, path, identity=ident, json_body=body)
        if sent is None or not sent.ok:
            return False
        after_ex = await ctx.send("GET", prof.path, identity=ident)
        after = after_ex.json() if after_ex is not None and after_ex.ok else None
        if after_ex is None or not isinstance(after, dict):
            return False
        changed = [k for k, v in inject.items() if after.get(k) == v]
        if not changed:
            return False
        restore = {k: before[k] for k in changed if k in before}
        if restore:
            await ctx.send(op.method, path, identity=ident, json_body=restore)
        note = (
            f"{ident.name} sent {sorted(inject)} in {op.method} {path}; reading back "
            f"{prof.path} showed {', '.join(f'{k}={after[k]!r}' for k in changed)} "
            f"(was {', '.join(f'{k}={before.get(k)!r}' for k in changed)}; restored)"
        )
        ctx.report(
            self.finding(
                ctx.target.url(op.path),
                [
                    ctx.evidence(sent, "the update"),
                    ctx.evidence(after_ex, note),
                ],
            )
        )
        return True
