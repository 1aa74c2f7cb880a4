"""Security headers on responses passed back from upstreams (OWASP Secure Headers).

The upstream's own choices win: a header is added only when the response lacks it.
Product/version headers (``Server``, ``X-Powered-By``) are removed.
"""

from __future__ import annotations

from bastion.config import ResponseHeadersConfig

RawHeaders = list[tuple[bytes, bytes]]


class Hardening:
    def __init__(self, config: ResponseHeadersConfig) -> None:
        self.enabled = config.harden
        self.strip = frozenset(name.lower().encode() for name in config.strip)
        self.hsts = (
            f"max-age={config.hsts_max_age}; includeSubDomains".encode()
            if config.hsts_max_age
            else b""
        )

    def apply(self, headers: RawHeaders, *, authenticated: bool, secure: bool) -> RawHeaders:
        """Headers with version disclosure removed and missing protections added."""
        kept = [(k, v) for k, v in headers if k.lower() not in self.strip]
        if not self.enabled:
            return kept
        present = {k.lower() for k, _ in kept}
        if b"x-content-type-options" not in present:
            kept.append((b"x-content-type-options", b"nosniff"))
        if b"x-frame-options" not in present and b"content-security-policy" not in present:
            kept.append((b"content-security-policy", b"frame-ancestors 'none'"))
        if authenticated and b"cache-control" not in present:
            kept.append((b"cache-control", b"no-store"))
        if secure and self.hsts and b"strict-transport-security" not in present:
            kept.append((b"strict-transport-security", self.hsts))
        return kept
