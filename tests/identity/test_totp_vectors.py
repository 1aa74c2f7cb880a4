"""RFC 6238 Appendix B and RFC 4226 Appendix D vectors against bastion's TOTP code."""

from __future__ import annotations

import base64

import pytest

from bastion.identity import totp

SEED20 = b"12345678901234567890"
SEED32 = b"12345678901234567890123456789012"  # RFC 6238 erratum 2866
SEED64 = b"1234567890" * 6 + b"1234"


def b32(seed: bytes) -> str:
    return base64.b32encode(seed).decode()


# RFC 4226 Appendix D: HOTP(K, C) for C = 0..9, 6 digits.
HOTP = ["755224", "287082", "359152", "969429", "338314",
        "254676", "287922", "162583", "399871", "520489"]  # fmt: skip


@pytest.mark.parametrize(("counter", "expected"), list(enumerate(HOTP)))
def test_rfc4226_hotp(counter: int, expected: str) -> None:
    assert totp.hotp(b32(SEED20), counter) == expected


# RFC 6238 Appendix B: time, then the 8-digit TOTP for SHA-1, SHA-256, SHA-512.
RFC6238 = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize(("moment", "sha1", "sha256", "sha512"), RFC6238)
def test_rfc6238_totp(moment: int, sha1: str, sha256: str, sha512: str) -> None:
    assert totp.totp(b32(SEED20), moment, digits=8, algorithm="SHA1") == sha1
    assert totp.totp(b32(SEED32), moment, digits=8, algorithm="SHA256") == sha256
    assert totp.totp(b32(SEED64), moment, digits=8, algorithm="SHA512") == sha512


def test_window_is_one_step_either_side() -> None:
    secret = b32(SEED20)
    now = 1111111111.0
    step = totp.step_at(now)
    for offset in (-1, 0, 1):
        assert totp.matching_step(secret, totp.hotp(secret, step + offset), now) == step + offset
    for offset in (-2, 2):
        assert totp.matching_step(secret, totp.hotp(secret, step + offset), now) is None


@pytest.mark.parametrize(
    "code", ["", "12345", "1234567", "abcdef", "\uff11\uff12\uff13\uff14\uff15\uff16", "12 34 5x"]
)
def test_malformed_codes_never_match(code: str) -> None:
    assert totp.matching_step(b32(SEED20), code, 59.0) is None


def test_spaces_inside_a_code_are_ignored() -> None:
    secret = b32(SEED20)
    code = totp.totp(secret, 59)
    assert totp.matching_step(secret, f"{code[:3]} {code[3:]}", 59.0) == 1


def test_provisioning_uri_and_qr_svg() -> None:
    secret = totp.new_secret()
    assert len(base64.b32decode(secret)) == 20
    uri = totp.provisioning_uri(secret, account="al ice", issuer="https://id.example")
    assert uri.startswith("otpauth://totp/https%3A%2F%2Fid.example:al%20ice?secret=")
    assert "digits=6" in uri
    assert "period=30" in uri
    svg = totp.qr_svg(uri)
    assert svg.startswith("<svg")
    assert "<script" not in svg
    assert "style=" not in svg
