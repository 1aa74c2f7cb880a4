"""Cookies set without HttpOnly / Secure / SameSite, with a loose Domain (once per cookie)."""

from __future__ import annotations

from bastion.scan._context import ScanContext
from bastion.scan._identity import Identity
from bastion.scan._model import Owasp, Severity
from bastion.scan._target import Exchange
from bastion.scan.checks import _samples
from bastion.scan.checks._base import Check


def attributes(header: str) -> tuple[str, dict[str, str]]:
    pair, *attrs = header.split(";")
    attr: dict[str, str] = {}
    for item in attrs:
        key, _, value = item.strip().partition("=")
        attr[key.lower()] = value.strip()
    return pair.split("=", 1)[0].strip(), attr


def sent_cross_site(ctx: ScanContext, jar: Identity) -> bool:
    """Whether a browser would attach ``jar``'s cookies to another site's request: not
    when every one of them was set SameSite=Lax or Strict by the logins."""
    flags = {
        name: attr
        for ex in ctx.state.get("login_exchanges", {}).values()
        for name, attr in map(attributes, ex.set_cookies)
    }
    return not all(
        flags.get(name, {}).get("samesite", "").lower() in {"lax", "strict"} for name in jar.cookies
    )


class CookieFlags(Check):
    id = "cookie_flags"
    title = "Cookie set without security attributes"
    severity = Severity.MEDIUM
    owasp = Owasp.API8
    cwe = 614
    why = (
        "Without HttpOnly a script (any XSS) reads the session; without Secure it is sent "
        "over plain HTTP; without SameSite other sites' requests carry it (CSRF); a Domain "
        "attribute shares it with every sub-domain."
    )
    fix = (
        "Set session cookies as '__Host-name=...; Path=/; Secure; HttpOnly; SameSite=Lax' "
        "(or Strict), with no Domain attribute."
    )
    phase = 0

    async def run(self, ctx: ScanContext) -> None:
        seen: dict[str, tuple[str, Exchange]] = {}
        logins: dict[str, Exchange] = ctx.state.get("login_exchanges", {})
        for ex in [*logins.values(), *await _samples.responses(ctx)]:
            for header in ex.set_cookies:
                name, _attrs = attributes(header)
                if not name.startswith("__Host-") or name not in seen:
                    seen.setdefault(name, (header, ex))
        for name, (header, ex) in seen.items():
            _name, attrs = attributes(header)
            if attrs.get("max-age") == "0" or "1970" in attrs.get("expires", ""):
                continue  # a deletion, not a cookie
            missing = [
                flag
                for flag, key in (
                    ("HttpOnly", "httponly"),
                    ("Secure", "secure"),
                    ("SameSite", "samesite"),
                )
                if key not in attrs
            ]
            if attrs.get("samesite", "").lower() == "none" and "secure" in attrs:
                missing.append("SameSite other than None")
            problems = [f"no {m}" for m in missing]
            if attrs.get("domain"):
                problems.append(f"Domain={attrs['domain']} shares it with sub-domains")
            if not problems:
                continue
            severity = (
                Severity.MEDIUM if "HttpOnly" in missing or "Secure" in missing else Severity.LOW
            )
            ctx.report(
                self.finding(
                    ctx.target.origin_url,
                    [ctx.evidence(ex, f"Set-Cookie {name}: " + ", ".join(problems))],
                    title=f"Cookie {name!r}: " + ", ".join(problems),
                    severity=severity,
                )
            )
