"""RS/ES → HS key confusion: an HMAC token keyed with the server's public key is accepted."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bastion.scan import _jwt
from bastion.scan._context import ScanContext
from bastion.scan._errors import OriginRefused
from bastion.scan._model import Owasp, Severity
from bastion.scan._target import origin_of
from bastion.scan.checks import _jwtprobe
from bastion.scan.checks._base import Check

JWKS_PATHS = ("/.well-known/jwks.json", "/jwks.json", "/.well-known/openid-configuration")


def _rsa_pems(jwk: dict[str, Any]) -> list[bytes]:
    """The byte strings a confused verifier may use as the HMAC key."""
    try:
        n = int.from_bytes(_jwt.unb64u(jwk["n"]), "big")
        e = int.from_bytes(_jwt.unb64u(jwk["e"]), "big")
    except (KeyError, ValueError, TypeError):
        return []
    key = rsa.RSAPublicNumbers(e, n).public_key()
    spki = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pkcs1 = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    return [spki, spki.rstrip(b"\n"), pkcs1, pkcs1.rstrip(b"\n")]


class JwtKeyConfusion(Check):
    id = "jwt_key_confusion"
    title = "JWT algorithm confusion: HS256 keyed with the public key accepted"
    severity = Severity.CRITICAL
    owasp = Owasp.API2
    cwe = 327
    why = (
        "The verifier takes the algorithm from the token, so an HMAC token keyed with the "
        "server's *public* RSA key (published in its JWKS) passes as genuine."
    )
    fix = (
        "Bind each key to one algorithm and pass an explicit allow-list to the verifier; "
        "never let the token's 'alg' choose how a key is used."
    )

    async def run(self, ctx: ScanContext) -> None:
        plan = await _jwtprobe.setup(ctx)
        if plan is None or plan.token.alg.upper()[:2] not in {"RS", "PS"}:
            return
        keys = await self._jwks(ctx)
        kid = plan.token.header.get("kid")
        keys.sort(key=lambda k: k.get("kid") != kid)
        for jwk in keys[:3]:
            for pem in _rsa_pems(jwk):
                header = {k: v for k, v in plan.token.header.items() if k != "jku"}
                header["alg"] = "HS256"
                token = _jwt.sign_hmac(header, plan.payload, pem)
                ex = await _jwtprobe.accepted(ctx, plan, token)
                if ex is not None:
                    note = _jwtprobe.describe(
                        plan,
                        token,
                        f"HS256 keyed with the JWKS public key (kid {jwk.get('kid')!r})",
                    )
                    ctx.report(self.finding(ctx.target.url(plan.oracle), [ctx.evidence(ex, note)]))
                    return

    async def _jwks(self, ctx: ScanContext) -> list[dict[str, Any]]:
        for path in JWKS_PATHS:
            ex = await ctx.send("GET", ctx.target.root_url(path))
            data = ex.json() if ex is not None and ex.ok else None
            if isinstance(data, dict) and isinstance(data.get("jwks_uri"), str):
                try:  # only follow a jwks_uri on the same origin
                    if origin_of(data["jwks_uri"]) != ctx.target.origin:
                        continue
                except OriginRefused:
                    continue
                ex = await ctx.send("GET", data["jwks_uri"])
                data = ex.json() if ex is not None and ex.ok else None
            if isinstance(data, dict) and isinstance(data.get("keys"), list):
                return [k for k in data["keys"] if isinstance(k, dict) and k.get("kty") == "RSA"]
        return []
