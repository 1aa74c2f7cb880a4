"""The password policy (NIST SP 800-63B §3.1.1.2) and its shipped common-password list;
recovery-code format and hashing."""

from __future__ import annotations

import pytest

from bastion.identity import recovery
from bastion.identity.policy import MIN_LENGTH, common_passwords, password_problems
from tests.identity.make_common_passwords import TARGET, render


def test_the_shipped_list_is_the_generators_output() -> None:
    assert TARGET.read_text(encoding="utf-8") == render()
    assert 3000 < len(common_passwords()) < 20000


@pytest.mark.parametrize(
    "password",
    ["password123!", "Qwertyuiop2024", "iloveyou1234", "P@ssw0rd2024", "monkey123456",
     "Dragon!!!!!!2024", "1234567890!"],
)  # fmt: skip
def test_common_passwords_are_refused(password: str) -> None:
    assert "this password is too common" in password_problems(password)


@pytest.mark.parametrize(
    "password",
    ["correct horse battery staple", "tr0ub4dor&3xyzzy", "ünïcödé pässwörd ok", "     spaces ok  "],
)  # fmt: skip
def test_long_uncommon_passwords_pass_without_composition_rules(password: str) -> None:
    assert password_problems(password, username="alice") == []


def test_length_username_and_repetition() -> None:
    assert password_problems("short") == [f"use at least {MIN_LENGTH} characters"]
    assert password_problems("zzzzzzzzzzzzzzzz") == ["use more than one distinct character"]
    assert password_problems("my name is Alice ok", username="alice") == [
        "do not use your username in your password"
    ]
    assert password_problems("x" * 1025)[0].startswith("password is longer")
    assert password_problems("bad\x00password!!")[0].startswith("password must not contain")


def test_recovery_codes_are_random_and_normalised() -> None:
    codes = recovery.new_codes()
    assert len(set(codes)) == recovery.COUNT
    key = b"k" * 32
    for code in codes:
        assert recovery.looks_like_code(code)
        assert recovery.digest(key, code) == recovery.digest(key, code.upper().replace("-", " "))
    assert recovery.digest(key, codes[0]) != recovery.digest(b"j" * 32, codes[0])
    assert not recovery.looks_like_code("0000-0000-0000")  # not in the alphabet


def test_place_names_the_country_only_when_geoip_is_on() -> None:
    from bastion.identity._device import place

    assert place("127.0.0.1", geoip=True) == "this machine"
    assert place("10.1.2.3", geoip=True) == "local network"
    assert place("not-an-ip", geoip=True) == "unknown"
    assert place("8.8.8.8") == "internet"
    assert place("8.8.8.8", geoip=True) == "United States"
    assert place("81.2.69.142", geoip=True) == "United Kingdom"
    assert place("2001:db8::1", geoip=True) in ("internet", "local network")
