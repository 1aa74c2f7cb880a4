"""BOLA: one user reaches another user's object by changing the id in the path.

Candidate ids, per operation: the victim's ids from its listing, from what its own
create operation answers (only when no listing names one), its profile id, and the
attacker's own ids ±1. Every path parameter is filled: user-like ones with the
victim's id. A read is proven when the attacker gets exactly the body the victim gets
(and an anonymous caller does not); a write (``--allow-unsafe`` only) when the victim
reads the attacker's marker back (then the victim restores the field).
"""

from __future__ import annotations

import secrets

from bastion.scan._context import Profile, ScanContext
from bastion.scan._identity import Identity
from bastion.scan._model import Owasp, Severity
from bastion.scan._openapi import Operation
from bastion.scan.checks import _bfla_writes, _objects
from bastion.scan.checks._base import Check

MAX_CANDIDATES = 4


def neighbours(own: list[str]) -> list[str]:
    """Integer ids next to the caller's own: where another user's object often is."""
    out = []
    for value in own:
        if value.isdigit():
            out += [str(int(value) + 1), str(int(value) - 1)]
    return [v for v in dict.fromkeys(out) if v not in own and not v.startswith("-")]


def _userish(name: str) -> bool:
    low = name.lower()
    return any(u in low for u in _objects.USERISH)


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
    phase = 2  # may create an object of the victim's own (when no listing names one)

    async def run(self, ctx: ScanContext) -> None:
        users = ctx.users
        if len(users) < 2:
            return
        profiles = await ctx.profiles()
        pairs = [(users[0], users[1]), (users[1], users[0])]
        for op in ctx.spec.operations:
            if not op.path_params or op.method not in {"GET", "PATCH", "PUT"}:
                continue
            if op.method != "GET" and not ctx.options.allow_unsafe:
                continue
            for attacker, victim in pairs:
                if await self._probe(ctx, op, attacker, victim, profiles):
                    break

    # ------------------------------------------------------------------ ids
    def _listing_path(self, ctx: ScanContext, op: Operation, prof: Profile | None) -> str | None:
        collection = _objects.collection_of(op.path)
        if collection is None:
            return None
        coll_op = ctx.spec.find("GET", collection)
        if coll_op is not None:
            own = prof.own_id if prof else None
            return coll_op.fill({p.name: own for p in coll_op.path_params if own}) or None
        # /users/{uid}/orders/{oid}: the caller's own /orders listing names the objects.
        last = collection.rsplit("/", 1)[-1]
        flat = [
            o.path
            for o in ctx.spec.operations
            if o.method == "GET" and not o.path_params and o.path.endswith("/" + last)
        ]
        return flat[0] if flat and "{" in collection else None

    async def _created(self, ctx: ScanContext, op: Operation, who: Identity) -> list[str]:
        """Ids from ``who``'s own create operation on the collection (the object stays)."""
        collection = _objects.collection_of(op.path)
        create = ctx.spec.find("POST", collection) if collection else None
        if create is None or create.path_params or create.body_schema is None:
            return []
        body = {
            name: "bastion-scan-" + secrets.token_hex(3)
            for name, schema in (create.body_schema.get("properties") or {}).items()
            if isinstance(schema, dict) and schema.get("type", "string") == "string"
        }
        ex = await ctx.send("POST", create.path, identity=who, json_body=body)
        data = ex.json() if ex is not None and ex.ok else None
        return _objects.ids([data]) if isinstance(data, dict) else []

    async def _ids(
        self, ctx: ScanContext, op: Operation, who: Identity, prof: Profile | None, create: bool
    ) -> list[str]:
        found: list[str] = []
        listing_path = self._listing_path(ctx, op, prof)
        if listing_path:
            listing = await ctx.cached("GET", listing_path, who)
            if listing is not None and listing.ok:
                found += _objects.ids(listing.json())
        last = op.path_params[-1].name
        collection = (_objects.collection_of(op.path) or "").rsplit("/", 1)[-1]
        if prof and prof.own_id and (_userish(last) or _userish(collection)):
            found.append(prof.own_id)
        if not found and create:
            found += await self._created(ctx, op, who)
        return found

    def _fill(self, op: Operation, object_id: str, prof: Profile | None) -> str | None:
        values = {op.path_params[-1].name: object_id}
        for param in op.path_params[:-1]:
            if not (_userish(param.name) and prof and prof.own_id):
                return None
            values[param.name] = prof.own_id
        return op.fill(values)

    # ---------------------------------------------------------------- probes
    async def _probe(
        self,
        ctx: ScanContext,
        op: Operation,
        attacker: Identity,
        victim: Identity,
        profiles: dict[str, Profile],
    ) -> bool:
        vprof, aprof = profiles.get(victim.name), profiles.get(attacker.name)
        mine = await self._ids(ctx, op, attacker, aprof, create=False)
        theirs = await self._ids(ctx, op, victim, vprof, create=op.method == "GET")
        candidates = [i for i in dict.fromkeys([*theirs, *neighbours(mine)]) if i not in mine]
        for object_id in candidates[:MAX_CANDIDATES]:
            path = self._fill(op, object_id, vprof)
            if path is None:
                continue
            if op.method == "GET":
                done = await self._read(ctx, op, path, attacker, victim, object_id)
            else:
                done = await self._write(ctx, op, path, attacker, victim)
            if done:
                return True
        return False

    async def _read(
        self,
        ctx: ScanContext,
        op: Operation,
        path: str,
        attacker: Identity,
        victim: Identity,
        object_id: str,
    ) -> bool:
        owner_view = await ctx.cached("GET", path, victim)
        if owner_view is None or not owner_view.ok or owner_view.json() is None:
            return False
        stolen = await ctx.send("GET", path, identity=attacker)
        if stolen is None or not stolen.ok:
            return False
        if not _objects.same_data(stolen.json(), owner_view.json()):
            return False
        anon = await ctx.send("GET", path)
        if anon is not None and anon.ok:
            return False  # readable by anyone: unauthenticated_access's business, not BOLA
        note = (
            f"{op.key}: {attacker.name} read object {object_id!r}, which is "
            f"{victim.name}'s, and got the same body {victim.name} gets"
        )
        ctx.report(
            self.finding(
                ctx.target.url(op.path),
                [ctx.evidence(stolen, note), ctx.evidence(owner_view, f"{victim.name}'s own view")],
            )
        )
        return True

    async def _write(
        self, ctx: ScanContext, op: Operation, path: str, attacker: Identity, victim: Identity
    ) -> bool:
        field = _bfla_writes.marker_field(op)
        if field is None or ctx.spec.find("GET", op.path) is None:
            return False
        before = await ctx.send("GET", path, identity=victim)
        if before is None or not before.ok or before.json() is None:
            return False
        marker = "bastion-bola-" + secrets.token_hex(4)
        sent = await ctx.send(op.method, path, identity=attacker, json_body={field: marker})
        after = await ctx.send("GET", path, identity=victim)
        if sent is None or after is None or marker not in after.text:
            return False
        original = _bfla_writes.value(before.json(), field)
        if original is not None:
            await ctx.send(op.method, path, identity=victim, json_body={field: original})
        note = (
            f"{attacker.name} sent {op.method} {path} with {field}={marker!r}; "
            f"{victim.name} then read its own object back with the marker (restored)"
        )
        ctx.report(
            self.finding(
                ctx.target.url(op.path),
                [ctx.evidence(sent, "the attacker's write"), ctx.evidence(after, note)],
                title="Broken object level authorization on write (BOLA)",
                severity=Severity.CRITICAL,
            )
        )
        return True
