"""BOLA: one user reads another user's object by changing the id in the path."""

from __future__ import annotations

from bastion.scan._context import Profile, ScanContext
from bastion.scan._identity import Identity
from bastion.scan._model import Owasp, Severity
from bastion.scan._openapi import Operation
from bastion.scan.checks import _objects
from bastion.scan.checks._base import Check


class Bola(Check):
    id = "bola"
    title = "Broken object level authorization (BOLA / IDOR)"
    severity = Severity.HIGH
    owasp = Owasp.API1
    cwe = 639
    why = (
        "The API checks that the caller is logged in but not that the object is theirs, so "
        "any user reads (or changes) any other user's data by trying ids."
    )
    fix = (
        "Authorize every object access against the caller (owner, tenant, ACL) in the data "
        "layer - e.g. WHERE owner_id = :caller - and answer 404 for others' objects."
    )

    async def run(self, ctx: ScanContext) -> None:
        users = ctx.users
        profiles = await ctx.profiles()
        if len(users) < 2:
            return
        pairs = [(users[0], users[1]), (users[1], users[0])]
        for op in ctx.spec.operations:
            if op.method != "GET" or len(op.path_params) != 1:
                continue
            for attacker, victim in pairs:
                if await self._probe(ctx, op, attacker, victim, profiles):
                    break

    async def _ids(
        self, ctx: ScanContext, op: Operation, who: Identity, prof: Profile | None
    ) -> list[str]:
        found: list[str] = []
        collection = _objects.collection_of(op.path)
        if collection and ctx.spec.find("GET", collection):
            listing = await ctx.cached("GET", collection, who)
            if listing is not None and listing.ok:
                found += _objects.ids(listing.json())
        param = op.path_params[0].name.lower()
        last = (collection or "").rsplit("/", 1)[-1].lower()
        if (
            prof
            and prof.own_id
            and (
                any(u in param for u in _objects.USERISH)
                or any(u in last for u in _objects.USERISH)
            )
        ):
            found.append(prof.own_id)
        return found

    async def _probe(
        self,
        ctx: ScanContext,
        op: Operation,
        attacker: Identity,
        victim: Identity,
        profiles: dict[str, Profile],
    ) -> bool:
        theirs = await self._ids(ctx, op, victim, profiles.get(victim.name))
        mine = set(await self._ids(ctx, op, attacker, profiles.get(attacker.name)))
        param = op.path_params[0].name
        for object_id in [i for i in theirs if i not in mine][:2]:
            path = op.fill({param: object_id})
            if path is None:
                continue
            owner_view = await ctx.cached("GET", path, victim)
            if owner_view is None or not owner_view.ok or owner_view.json() is None:
                continue
            stolen = await ctx.send("GET", path, identity=attacker)
            if (
                stolen is None
                or not stolen.ok
                or not _objects.same_data(stolen.json(), owner_view.json())
            ):
                continue
            anon = await ctx.send("GET", path)
            if anon is not None and anon.ok:
                continue  # readable by anyone: unauthenticated_access's business, not BOLA
            note = (
                f"{op.key}: {attacker.name} read object {object_id!r}, which appears only "
                f"in {victim.name}'s data, and got the same body {victim.name} gets"
            )
            ctx.report(
                self.finding(
                    ctx.target.url(op.path),
                    [
                        ctx.evidence(stolen, note),
                        ctx.evidence(owner_view, f"{victim.name}'s own view"),
                    ],
                )
            )
            return True
        return False
