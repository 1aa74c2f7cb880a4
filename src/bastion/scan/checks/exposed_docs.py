"""Exposed documentation, debug endpoints, and older API versions still served."""

from __future__ import annotations

import re
import secrets

from bastion.scan._context import ScanContext
from bastion.scan._errors import SpecError
from bastion.scan._model import Owasp, Severity
from bastion.scan._openapi import parse_text
from bastion.scan._target import Exchange
from bastion.scan.checks import _objects
from bastion.scan.checks._base import Check

DOCS = ("/openapi.json", "/swagger.json", "/v3/api-docs", "/docs", "/redoc", "/swagger-ui.html")
DEBUG = (
    "/_debug",
    "/debug",
    "/actuator",
    "/actuator/env",
    "/env",
    "/.env",
    "/server-status",
    "/debug/vars",
    "/debug/pprof/",
    "/__debug__/",
    "/console",
    "/phpinfo.php",
)
DEBUG_SIGNS = re.compile(
    r"\"(env|environ|environment|settings|config|propertySources|memstats|cmdline)\"\s*:|"
    r"^[A-Z][A-Z0-9_]{2,}=.+$|Apache Server Status|phpinfo\(\)|Werkzeug|"
    r"goroutine profile|\"_links\"\s*:",
    re.M,
)
VERSION = re.compile(r"/v(\d+)/")


def _is_docs(ex: Exchange) -> bool:
    if ex.headers.get("content-type", "").startswith(
        ("application/json", "application/yaml", "text/yaml", "application/x-yaml")
    ):
        try:
            parse_text(ex.text)
            return True
        except SpecError:
            return False
    return bool(re.search(r"swagger-ui|redoc|SwaggerUIBundle", ex.text, re.I))


class ExposedDocs(Check):
    id = "exposed_docs"
    title = "Debug endpoint exposed"
    severity = Severity.HIGH
    owasp = Owasp.API9
    cwe = 215
    why = (
        "Debug and management endpoints leak configuration, secrets and internals; public "
        "API documentation and forgotten old versions widen what an attacker can reach."
    )
    fix = (
        "Remove debug endpoints from production builds, serve API docs only where intended "
        "(behind authentication for private APIs), and retire old API versions."
    )
    phase = 0

    async def run(self, ctx: ScanContext) -> None:
        decoy = await ctx.send("GET", ctx.target.root_url(f"/bastion-{secrets.token_hex(5)}"))
        if decoy is not None and decoy.ok:
            return  # a catch-all that answers 200 to anything: signatures would be noise
        for path in DEBUG:
            ex = await ctx.send("GET", ctx.target.root_url(path))
            if ex is not None and ex.ok and DEBUG_SIGNS.search(ex.text[:20000]):
                ctx.report(
                    self.finding(
                        ctx.target.root_url(path),
                        [ctx.evidence(ex, f"{path} answered with debug/configuration content")],
                    )
                )
        for path in DOCS:
            ex = await ctx.send("GET", ctx.target.root_url(path))
            if ex is not None and ex.ok and _is_docs(ex):
                ctx.report(
                    self.finding(
                        ctx.target.root_url(path),
                        [ctx.evidence(ex, f"{path} serves API documentation")],
                        title="API documentation publicly served",
                        severity=Severity.INFO,
                    )
                )
                break
        await self._old_versions(ctx)

    async def _old_versions(self, ctx: ScanContext) -> None:
        ident = next(iter(ctx.users or ctx.identities), None)
        profiles = await ctx.profiles()
        prof = profiles.get(ident.name) if ident else None
        for op in ctx.spec.operations:
            match = VERSION.search(op.path)
            if op.method != "GET" or not match or int(match.group(1)) < 2:
                continue
            path = ctx.sample_path(op, prof)
            if path is None:
                continue
            current = await ctx.cached("GET", path, ident)
            if current is None or not current.ok:
                continue
            for old in range(int(match.group(1)) - 1, 0, -1):
                old_path = path.replace(match.group(0), f"/v{old}/", 1)
                ex = await ctx.send("GET", old_path)
                if ex is not None and ex.ok and _objects.same_data(ex.json(), current.json()):
                    note = (
                        f"{old_path} (an older version) answered without credentials with the "
                        f"data {op.key} gives an authenticated caller"
                    )
                    ctx.report(
                        self.finding(
                            ctx.target.url(old_path),
                            [ctx.evidence(ex, note)],
                            title="Older API version still served",
                            severity=Severity.HIGH,
                        )
                    )
                    return
