"""Responses carry secrets (password hashes, keys) or fields the API does not document."""

from __future__ import annotations

import re

from bastion.scan._context import ScanContext, leaves
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks import _objects
from bastion.scan.checks._base import Check

SENSITIVE = re.compile(
    r"^(password|passwd|pwd|password_?hash|hashed_?password|pass_?hash|secret|client_?secret|"
    r"api_?key|private_?key|otp_?secret|totp_?secret|mfa_?secret|salt|ssn|"
    r"credit_?card|card_?number|cvv|security_?answer|recovery_?codes?)$",
    re.I,
)


class ExcessiveDataExposure(Check):
    id = "excessive_data_exposure"
    title = "Sensitive fields exposed in responses"
    severity = Severity.HIGH
    owasp = Owasp.API3
    cwe = 213
    why = (
        "The API returns whole stored objects and leaves filtering to the client, so "
        "password hashes, secrets and internal fields reach anyone who reads the JSON."
    )
    fix = (
        "Serialize responses through explicit output schemas listing the fields each "
        "caller may see; never return credential material."
    )

    async def run(self, ctx: ScanContext) -> None:
        if not ctx.identities:
            return
        ident = ctx.users[0] if ctx.users else ctx.identities[0]
        profiles = await ctx.profiles()
        for op in ctx.spec.operations:
            if op.method != "GET":
                continue
            path = ctx.sample_path(op, profiles.get(ident.name))
            ex = await ctx.cached("GET", path, ident) if path else None
            data = ex.json() if ex is not None and ex.ok else None
            if ex is None or data is None:
                continue
            secret = sorted(
                {
                    k.split(".")[-1]
                    for k, v in leaves(data)
                    if SENSITIVE.match(k.split(".")[-1].removesuffix("[]"))
                    and v not in (None, "", [], {})
                }
            )
            if secret:
                ctx.report(
                    self.finding(
                        ctx.target.url(op.path),
                        [ctx.evidence(ex, f"fields {secret} in {op.key}")],
                        detail=f"sensitive fields: {', '.join(secret)}",
                    )
                )
                continue
            declared = op.declared_fields()
            objects = [data] if isinstance(data, dict) else _objects.items(data)
            if declared is None or not objects:
                continue
            extra = sorted({k for obj in objects[:50] for k in obj} - declared)
            if extra:
                ctx.report(
                    self.finding(
                        ctx.target.url(op.path),
                        [ctx.evidence(ex, f"undocumented fields {extra} in {op.key}")],
                        title="Response carries fields the API does not document",
                        severity=Severity.LOW,
                        detail=f"undocumented: {', '.join(extra)}",
                    )
                )
