"""A few ordinary responses of the target, for the per-origin header checks."""

from __future__ import annotations

from bastion.scan._context import ScanContext
from bastion.scan._target import Exchange


async def authenticated(ctx: ScanContext) -> Exchange | None:
    """A successful authenticated API response (the identity endpoint, or any GET)."""
    if not ctx.identities:
        return None
    ident = ctx.users[0] if ctx.users else ctx.identities[0]
    profiles = await ctx.profiles()
    if ident.name in profiles:
        return await ctx.cached("GET", profiles[ident.name].path, ident)
    for op in ctx.spec.operations:
        if op.method == "GET" and not op.path_params:
            ex = await ctx.cached("GET", op.path, ident)
            if ex is not None and ex.ok:
                return ex
    return None


async def responses(ctx: ScanContext) -> list[Exchange]:
    """The authenticated sample plus the anonymous base URL and one public operation."""
    out = []
    auth = await authenticated(ctx)
    if auth is not None:
        out.append(auth)
    base = await ctx.cached("GET", ctx.target.base_url, None)
    if base is not None:
        out.append(base)
    for op in ctx.spec.operations:
        if op.method == "GET" and not op.secured and not op.path_params:
            ex = await ctx.cached("GET", op.path, None)
            if ex is not None:
                out.append(ex)
            break
    return out
