"""BFLA probes that change state, always on the scan user's *own* object, read back.

* An administrator's update operation called by a regular user on their own record:
  the admin reads the object back and sees the scanner's marker (then restores it).
* A ``GET`` whose path names an action (``/archive``, ``/disable``…) called with no
  credential on the user's own object: the owner reads it back changed (then the
  inverse action, when the spec has one, restores it). Destructive actions
  (``delete``, ``remove``…) are only tried with ``--allow-unsafe``.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from bastion.scan._context import ScanContext, leaves
from bastion.scan._identity import Identity
from bastion.scan._model import Severity
from bastion.scan._openapi import Operation
from bastion.scan.checks import _objects

if TYPE_CHECKING:
    from bastion.scan.checks._base import Check

DESTRUCTIVE = {"delete", "remove", "destroy", "purge", "cancel", "close", "reset"}
INVERSE = {
    "archive": "unarchive",
    "disable": "enable",
    "activate": "deactivate",
    "publish": "unpublish",
    "lock": "unlock",
    "ban": "unban",
    "promote": "demote",
    "subscribe": "unsubscribe",
    "close": "reopen",
}
INVERSE |= {v: k for k, v in INVERSE.items()}
SKIP_FIELDS = ("pass", "role", "admin", "id", "mail", "token", "secret", "key", "owner")


def marker_field(op: Operation) -> str | None:
    props = (op.body_schema or {}).get("properties") or {}
    for name, schema in props.items():
        kind = schema.get("type", "string") if isinstance(schema, dict) else "string"
        if kind == "string" and not any(s in name.lower() for s in SKIP_FIELDS):
            return str(name)
    return None


def _own_fill(op: Operation, own_id: str | None) -> str | None:
    """``op``'s path on the caller's own record, or None when a parameter is not theirs."""
    if own_id is None or not op.path_params:
        return None
    values = {}
    for param in op.path_params:
        low = param.name.lower()
        if not (any(u in low for u in _objects.USERISH) or low in {"id", "uid"}):
            return None
        values[param.name] = own_id
    return op.fill(values)


def value(body: Any, field: str) -> Any:
    return next((v for k, v in leaves(body) if k.rsplit(".", 1)[-1] == field), None)


async def admin_write(
    check: Check, ctx: ScanContext, op: Operation, admin: Identity, user: Identity
) -> None:
    field = marker_field(op)
    prof = (await ctx.profiles()).get(user.name)
    path = _own_fill(op, prof.own_id if prof else None)
    read = ctx.spec.find("GET", op.path)
    if field is None or path is None or read is None:
        return  # not the user's own object, or nothing to read it back with
    before = await ctx.send("GET", path, identity=admin)
    if before is None or not before.ok or before.json() is None:
        return
    marker = "bastion-bfla-" + secrets.token_hex(4)
    sent = await ctx.send(op.method, path, identity=user, json_body={field: marker})
    after = await ctx.send("GET", path, identity=admin)
    if sent is None or after is None or marker not in after.text:
        return
    original = value(before.json(), field)
    if original is not None:
        await ctx.send(op.method, path, identity=admin, json_body={field: original})
    note = (
        f"{user.name} (not an admin) called {op.key} on its own record {path} with "
        f"{field}={marker!r}; reading back as {admin.name} showed the marker (restored)"
    )
    ctx.report(
        check.finding(
            ctx.target.url(op.path),
            [ctx.evidence(sent, "the regular user's call"), ctx.evidence(after, note)],
            title="Admin update operation callable by a regular user",
        )
    )


def state_changing_gets(ctx: ScanContext) -> list[Operation]:
    out = []
    for op in ctx.spec.actions:
        action = op.path.rsplit("/", 1)[-1].lower()
        if action not in {"logout", "signout"} and (
            action not in DESTRUCTIVE or ctx.options.allow_unsafe
        ):
            out.append(op)
    return out


async def _own_object(ctx: ScanContext, object_path: str, owner: Identity) -> str | None:
    """The id of an object ``owner`` holds in the collection over ``object_path``."""
    collection = _objects.collection_of(object_path)
    if collection is None or not ctx.spec.find("GET", collection):
        return None
    listing = await ctx.cached("GET", collection, owner)
    found = _objects.ids(listing.json()) if listing is not None and listing.ok else []
    return found[0] if found else None


async def anonymous_state_get(check: Check, ctx: ScanContext, op: Operation) -> None:
    action = op.path.rsplit("/", 1)
    object_op = ctx.spec.find("GET", action[0])
    if object_op is None or len(object_op.path_params) != 1 or not ctx.users:
        return
    for owner in ctx.users:  # the first user who owns such an object
        object_id = await _own_object(ctx, object_op.path, owner)
        if object_id is not None:
            await _anonymous_action(check, ctx, op, object_op, owner, object_id)
            return


async def _anonymous_action(
    check: Check,
    ctx: ScanContext,
    op: Operation,
    object_op: Operation,
    owner: Identity,
    object_id: str,
) -> None:
    action = op.path.rsplit("/", 1)
    param = object_op.path_params[0].name
    read, act = object_op.fill({param: object_id}), op.fill({param: object_id})
    if read is None or act is None:
        return
    first = await ctx.send("GET", read, identity=owner)
    second = await ctx.send("GET", read, identity=owner)
    if first is None or second is None or not first.ok or first.text != second.text:
        return  # not readable, or changes by itself: a difference would prove nothing
    anon = await ctx.send("GET", act)
    after = await ctx.send("GET", read, identity=owner)
    if anon is None or after is None or not after.ok or after.text == first.text:
        return
    inverse = INVERSE.get(action[1].lower())
    undo = ctx.spec.find("GET", f"{action[0]}/{inverse}") if inverse else None
    if undo is not None:
        await ctx.send("GET", undo.fill({param: object_id}) or "", identity=owner)
    note = (
        f"GET {act} with no credential (HTTP {anon.status}) changed {owner.name}'s own "
        f"object: reading {read} back as the owner differs from before"
        + (" (undone with the inverse action)" if undo is not None else "")
    )
    ctx.report(
        check.finding(
            ctx.target.url(op.path),
            [
                ctx.evidence(first, "the owner's view before"),
                ctx.evidence(anon, "the unauthenticated GET"),
                ctx.evidence(after, note),
            ],
            title="Unauthenticated state-changing GET",
            severity=Severity.HIGH,
        )
    )
