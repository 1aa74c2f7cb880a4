"""A rate limit that trusts X-Forwarded-For / X-Real-IP is reset by a spoofed header."""

from __future__ import annotations

import re
import secrets
from typing import Any

from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan._openapi import Operation
from bastion.scan._target import Exchange
from bastion.scan.checks._base import Check

LIMITED = re.compile(r"log[_-]?in|sign[_-]?in|reset|forgot|otp|verify|mfa|2fa|token$", re.I)


def _spoof(n: int) -> dict[str, str]:
    # 203.0.113.0/24 is TEST-NET-3 (RFC 5737): put in a header only, never contacted.
    ip = f"203.0.113.{(n % 250) + 1}"
    return {"X-Forwarded-For": ip, "X-Real-IP": ip, "X-Client-IP": ip, "True-Client-IP": ip}


def _dummy(op: Operation) -> dict[str, Any]:
    props = (op.body_schema or {}).get("properties") or {}
    out: dict[str, Any] = {}
    for name, schema in props.items():
        low = name.lower()
        if "mail" in low:
            out[name] = f"nobody-{secrets.token_hex(3)}@bastion-scan.invalid"
        elif "pass" in low:
            out[name] = "bastion-" + secrets.token_hex(6)
        elif isinstance(schema, dict) and schema.get("type") in {"integer", "number"}:
            out[name] = 0
        else:
            out[name] = "bastion-" + secrets.token_hex(4)
    return out or {"username": "bastion-" + secrets.token_hex(4), "password": "x"}


class XffBypass(Check):
    id = "xff_bypass"
    title = "Rate limit bypassed with a spoofed X-Forwarded-For"
    severity = Severity.HIGH
    owasp = Owasp.API4
    cwe = 348
    why = (
        "The limit is keyed on a client-supplied header, so an attacker sends a new "
        "address with every request and is never limited (brute force, OTP guessing)."
    )
    fix = (
        "Key limits on the connection's peer address, and honour X-Forwarded-For only from "
        "your own proxies (take the right-most untrusted hop)."
    )
    phase = 3

    async def run(self, ctx: ScanContext) -> None:
        ops = [
            op
            for op in ctx.spec.operations
            if op.method == "POST" and LIMITED.search(op.path) and not op.path_params
        ]
        for op in ops[:3]:
            limited = await self._burst(ctx, op)
            if limited is None:
                continue
            spoofed = [
                await ctx.send("POST", op.path, json_body=_dummy(op), headers=_spoof(i))
                for i in range(2)
            ]
            if not all(s is not None and s.status != 429 for s in spoofed):
                return
            again = await ctx.send("POST", op.path, json_body=_dummy(op))
            if again is not None and again.status == 429:
                first = spoofed[0]
                if first is None:
                    return
                ctx.report(
                    self.finding(
                        ctx.target.url(op.path),
                        [
                            ctx.evidence(limited, "limited: the burst drew 429"),
                            ctx.evidence(
                                first, "same client with a spoofed X-Forwarded-For: not limited"
                            ),
                            ctx.evidence(again, "without the header: still limited"),
                        ],
                    )
                )
            return

    async def _burst(self, ctx: ScanContext, op: Operation) -> Exchange | None:
        for _ in range(ctx.options.burst_size):
            ex = await ctx.send("POST", op.path, json_body=_dummy(op))
            if ex is None:
                return None
            if ex.status == 429:
                return ex
        return None
