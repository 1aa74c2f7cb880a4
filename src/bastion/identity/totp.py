"""TOTP second factor: RFC 6238 time-based one-time passwords (HOTP, RFC 4226) on pyotp.

Codes are 6 digits, SHA-1, 30-second steps (what every authenticator app supports);
one step either side is accepted (RFC 6238 §5.2 allows for clock drift and the time it
takes to type), and each accepted step is remembered so a code works once (§5.2: "the
verifier MUST NOT accept the second attempt of the OTP after the successful validation").
The enrolment QR code is an SVG rendered on the server (segno): no script, no request to
anyone else, and the secret never leaves bastion's own page.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pyotp
import segno

DIGITS = 6
PERIOD = 30  # seconds per step (RFC 6238 §5.2 recommends 30)
WINDOW = 1  # steps accepted either side of the current one
SECRET_BYTES = 20  # 160 bits, RFC 4226 §4 R6
_DIGESTS: dict[str, Callable[..., Any]] = {
    "SHA1": hashlib.sha1,
    "SHA256": hashlib.sha256,
    "SHA512": hashlib.sha512,
}


def new_secret() -> str:
    """A fresh random base32 secret (160 bits)."""
    return pyotp.random_base32(length=32)


def hotp(secret: str, counter: int, *, digits: int = DIGITS, algorithm: str = "SHA1") -> str:
    """The RFC 4226 HOTP value of ``counter`` for a base32 ``secret``."""
    return str(pyotp.HOTP(secret, digits=digits, digest=_DIGESTS[algorithm]).at(counter))


def step_at(moment: float) -> int:
    """The RFC 6238 time step ``T = floor((t - T0) / X)`` with T0 = 0, X = 30."""
    return int(moment // PERIOD)


def totp(secret: str, moment: float, *, digits: int = DIGITS, algorithm: str = "SHA1") -> str:
    """The RFC 6238 TOTP value at ``moment`` (seconds since the epoch)."""
    return hotp(secret, step_at(moment), digits=digits, algorithm=algorithm)


def matching_step(secret: str, code: str, moment: float) -> int | None:
    """The time step ``code`` belongs to, within ±:data:`WINDOW` of ``moment``, or None.

    Every candidate is computed and compared in constant time, so timing does not show
    which step (if any) matched.
    """
    code = "".join(code.split())
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    now = step_at(moment)
    found = None
    for step in range(now - WINDOW, now + WINDOW + 1):
        if hmac.compare_digest(hotp(secret, step).encode(), code.encode()):
            found = step
    return found


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI authenticator apps read from the QR code."""
    label = f"{quote(issuer, safe='')}:{quote(account, safe='@')}"
    return (
        f"otpauth://totp/{label}?secret={secret}&issuer={quote(issuer, safe='')}"
        f"&algorithm=SHA1&digits={DIGITS}&period={PERIOD}"
    )


def qr_svg(uri: str) -> str:
    """The QR code of ``uri`` as an inline SVG element (no script, no inline style)."""
    qr = segno.make(uri, error="m", micro=False)
    svg: str = qr.svg_inline(scale=5, dark="#1d2330", light="#ffffff", title="TOTP QR code")
    return svg
