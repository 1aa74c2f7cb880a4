"""Credentials accepted in the URL (query string), where logs and Referer leak them."""

from __future__ import annotations

from bastion.scan._context import ScanContext
from bastion.scan._model import Evidence, Owasp, Severity
from bastion.scan.checks._base import Check

KEY_PARAMS = ("api_key", "apikey", "key", "token")
TOKEN_PARAMS = ("access_token", "token")


class CredentialInUrl(Check):
    id = "credential_in_url"
    title = "Credential accepted in the URL"
    severity = Severity.MEDIUM
    owasp = Owasp.API2
    cwe = 598
    why = (
        "URLs are written to access logs, proxy logs, browser history and Referer headers; "
        "a key or token in the query string leaks through all of them."
    )
    fix = (
        "Accept API keys and tokens only in headers (Authorization or a named header); "
        "reject them in the query string (RFC 6750 §2.3 advises against access_token)."
    )

    async def run(self, ctx: ScanContext) -> None:
        for name, scheme in ctx.spec.security_schemes.items():
            if isinstance(scheme, dict) and scheme.get("in") == "query":
                note = f"the API's document declares security scheme {name!r} in the query string"
                ctx.report(
                    self.finding(
                        ctx.target.origin_url,
                        [Evidence(f"securitySchemes.{name}", str(scheme), note)],
                        title="API documents a credential in the query string",
                    )
                )
        profiles = await ctx.profiles()
        for ident in ctx.identities:
            prof = profiles.get(ident.name)
            if prof is None or ident.kind not in {"header", "bearer"}:
                continue
            params: tuple[str, ...]
            if ident.kind == "header":
                params = (ident.header_name, ident.header_name.lower(), *KEY_PARAMS)
            else:
                params = TOKEN_PARAMS
            for param in dict.fromkeys(params):
                ex = await ctx.send("GET", prof.path, params={param: ident.value})
                if ex is not None and await ctx.shows(ex, ident):
                    what = "API key" if ident.kind == "header" else "Bearer token"
                    note = f"{ident.name}'s {what} in ?{param}= (no header) read {prof.path}"
                    ctx.report(
                        self.finding(
                            ctx.target.url(prof.path),
                            [ctx.evidence(ex, note)],
                            title=f"{what} accepted in the query string",
                        )
                    )
                    break
