"""The JWT HMAC secret is a well-known or guessable word."""

from __future__ import annotations

from bastion.scan import _jwt
from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks import _jwtprobe
from bastion.scan.checks._base import Check


def masked(secret: bytes) -> str:
    text = secret.decode("utf-8", "replace")
    if len(text) <= 2:
        return "*" * len(text) + f" ({len(text)} chars)"
    return f"{text[0]}{'*' * (len(text) - 2)}{text[-1]} ({len(text)} chars)"


class JwtWeakSecret(Check):
    id = "jwt_weak_secret"
    title = "JWT signed with a weak, guessable HMAC secret"
    severity = Severity.CRITICAL
    owasp = Owasp.API2
    cwe = 521
    why = (
        "An HMAC secret that is a common word is cracked offline from a single token; "
        "with it anyone can mint valid tokens for any user."
    )
    fix = (
        "Use a random key of at least 32 bytes from a secrets manager, rotate it now (every "
        "token signed with the old one is compromised), or move to an asymmetric algorithm."
    )

    async def run(self, ctx: ScanContext) -> None:
        plan = await _jwtprobe.setup(ctx)
        if plan is None or not plan.token.alg.upper().startswith("HS"):
            return
        found = _jwtprobe.hmac_key(ctx, plan)
        if found is None or found[1] != "cracked from the wordlist":
            return
        key, _source = found
        token = _jwt.sign_hmac(plan.token.header, _jwtprobe.fresh_claims(plan.payload), key)
        ex = await _jwtprobe.accepted(ctx, plan, token)
        if ex is None:
            return
        note = _jwtprobe.describe(
            plan, token, f"secret {masked(key)} cracked offline from one token, then forged"
        )
        ctx.report(self.finding(ctx.target.url(plan.oracle), [ctx.evidence(ex, note)]))
