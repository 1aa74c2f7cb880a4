"""Credentials over plain HTTP; an HTTPS origin also served on HTTP; no HSTS (per origin)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from bastion.scan._context import ScanContext
from bastion.scan._model import Evidence, Owasp, Severity
from bastion.scan.checks import _samples
from bastion.scan.checks._base import Check

HSTS_MIN = 180 * 24 * 3600  # ZAP 10035 and hstspreload.org ask for at least ~6 months


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Transport(Check):
    id = "transport"
    title = "Credentials sent over plain HTTP"
    severity = Severity.HIGH
    owasp = Owasp.API8
    cwe = 319
    why = (
        "Over plain HTTP every token, key, password and cookie crosses the network in the "
        "clear; anyone on the path reads and replays them."
    )
    fix = (
        "Serve the API on HTTPS only (TLS 1.2+), redirect or close plain HTTP, and send "
        "'Strict-Transport-Security: max-age=31536000; includeSubDomains'."
    )
    phase = 0

    async def run(self, ctx: ScanContext) -> None:
        if ctx.target.https:
            await self._https(ctx)
            return
        sends_credentials = bool(ctx.identities) or any(op.secured for op in ctx.spec.operations)
        if not sends_credentials:
            return
        host = ctx.target.origin[1]
        local = loopback(host)
        note = "the API takes credentials on a plain-HTTP origin" + (
            " (loopback only: nothing crosses a network, so informational)" if local else ""
        )
        ctx.report(
            self.finding(
                ctx.target.origin_url,
                [Evidence(f"origin {ctx.target.origin_url}", "(scheme http)", note)],
                severity=Severity.INFO if local else self.severity,
            )
        )

    async def _https(self, ctx: ScanContext) -> None:
        found = await _samples.responses(ctx)
        if found:
            hsts = found[0].headers.get("strict-transport-security", "")
            age = _max_age(hsts)
            if age is None or age < HSTS_MIN:
                what = "no Strict-Transport-Security header" if not hsts else f"weak HSTS: {hsts}"
                ctx.report(
                    self.finding(
                        ctx.target.origin_url,
                        [ctx.evidence(found[0], what)],
                        title="HSTS missing or too short",
                        severity=Severity.LOW,
                    )
                )
        _scheme, host, _port = ctx.target.origin
        for port in ctx.target.sibling_ports:
            url = f"http://{host}:{port}{urlsplit(ctx.target.base_url).path}"
            ex = await ctx.send("GET", url, sibling=True)
            if ex is not None and ex.ok:
                note = f"http on port {port} answered {ex.status} instead of redirecting to https"
                ctx.report(
                    self.finding(
                        ctx.target.origin_url,
                        [ctx.evidence(ex, note)],
                        title="HTTPS origin also served over plain HTTP",
                        severity=Severity.MEDIUM,
                    )
                )
                return


def _max_age(header: str) -> int | None:
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "max-age":
            try:
                return int(value.strip('"'))
            except ValueError:
                return None
    return None
