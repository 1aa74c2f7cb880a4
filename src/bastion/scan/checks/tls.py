"""TLS: old protocol versions, weak ciphers, bad or expiring certificates (per origin)."""

from __future__ import annotations

import datetime
import re
import ssl
import warnings

from cryptography import x509

from bastion.scan._context import ScanContext
from bastion.scan._errors import DryRun
from bastion.scan._model import Evidence, Owasp, Severity
from bastion.scan.checks._base import Check

SOON = datetime.timedelta(days=30)
WEAK_CIPHERS = "RC4:3DES:DES:NULL:EXPORT:aNULL:eNULL:MD5:@SECLEVEL=0"
WEAK_NAMES = re.compile(r"RC4|3DES|DES-CBC|NULL|EXP|MD5|ADH|AECDH|anon", re.I)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    OLD = (("TLS 1.0", ssl.TLSVersion.TLSv1), ("TLS 1.1", ssl.TLSVersion.TLSv1_1))


def _context(
    verify: bool, cafile: str | None = None, only: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # OpenSSL 3 will not even offer TLS 1.0/1.1 (or SHA-1 handshakes) above level 0: a probe
    # without this would report "not supported" for a server that happily speaks TLS 1.0.
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        # Offering deprecated versions is the point of the probe.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = only or ssl.TLSVersion.TLSv1
        if only is not None:
            ctx.maximum_version = only
    if verify:
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        if cafile:
            ctx.load_verify_locations(cafile)
        else:
            ctx.load_default_certs()
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Tls(Check):
    id = "tls"
    title = "Weak TLS configuration"
    severity = Severity.MEDIUM
    owasp = Owasp.API8
    cwe = 326
    why = (
        "TLS 1.0/1.1 and weak ciphers have practical attacks (BEAST, POODLE, SWEET32) and are "
        "banned by PCI DSS and RFC 8996; a bad certificate trains clients to ignore warnings."
    )
    fix = (
        "Offer TLS 1.2 and 1.3 only with AEAD ciphers, and serve a certificate from a "
        "trusted CA, renewed automatically well before it expires."
    )
    phase = 0

    async def run(self, ctx: ScanContext) -> None:
        if not ctx.target.https:
            return
        origin = ctx.target.origin_url
        for name, version in OLD:
            obj = await self._try(ctx, _context(verify=False, only=version))
            if obj is not None:
                self._report(
                    ctx,
                    f"{name} accepted",
                    f"handshake completed with {obj.version()} using {obj.cipher()}",
                    Severity.MEDIUM,
                )
        # TLS 1.3 suites ignore set_ciphers: the weak-cipher offer must stop at TLS 1.2.
        weak = _context(verify=False)
        weak.maximum_version = ssl.TLSVersion.TLSv1_2
        try:
            weak.set_ciphers(WEAK_CIPHERS)
            testable = True
        except ssl.SSLError:
            testable = False  # this OpenSSL build has none of them: cannot test, do not guess
        if testable:
            obj = await self._try(ctx, weak)
            cipher = obj.cipher() if obj is not None else None
            if cipher and WEAK_NAMES.search(cipher[0]):
                self._report(
                    ctx, "Weak cipher suite accepted", f"negotiated {cipher}", Severity.MEDIUM
                )
        await self._certificate(ctx, origin)

    async def _try(self, ctx: ScanContext, context: ssl.SSLContext) -> ssl.SSLObject | None:
        try:
            return await ctx.target.tls_handshake(context)
        except DryRun:
            return None  # recorded in the plan; the next handshake is planned too
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError):
            return None

    async def _certificate(self, ctx: ScanContext, origin: str) -> None:
        cafile = ctx.options.ca_bundle
        try:
            await ctx.target.tls_handshake(_context(verify=True, cafile=cafile))
        except ssl.SSLCertVerificationError as exc:
            reason = exc.verify_message or str(exc)
            sev = Severity.HIGH if "expired" in reason else Severity.MEDIUM
            self._report(
                ctx, f"Certificate not trusted: {reason}", f"verification failed: {reason}", sev
            )
            return
        except DryRun:
            return
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError):
            return
        obj = await self._try(ctx, _context(verify=False))
        der = obj.getpeercert(binary_form=True) if obj is not None else None
        if der:
            cert = x509.load_der_x509_certificate(der)
            left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
            if left < SOON:
                self._report(
                    ctx,
                    "Certificate expires soon",
                    f"expires {cert.not_valid_after_utc:%Y-%m-%d} ({left.days} days)",
                    Severity.LOW,
                )

    def _report(self, ctx: ScanContext, title: str, what: str, severity: Severity) -> None:
        host, port = ctx.target.origin[1], ctx.target.origin[2]
        ctx.report(
            self.finding(
                ctx.target.origin_url,
                [Evidence(f"TLS ClientHello to {host}:{port}", what, title)],
                title=title,
                severity=severity,
            )
        )
