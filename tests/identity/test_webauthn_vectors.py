"""W3C WebAuthn Level 3 §16 test vectors through bastion's relying party (py_webauthn)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from webauthn import verify_authentication_response, verify_registration_response
from webauthn.helpers import bytes_to_base64url as b64

from bastion.identity._store import Passkey
from bastion.identity.passkeys import PasskeyError, Registered, RelyingParty

DATA = json.loads(
    (Path(__file__).parents[1] / "vectors/webauthn/w3c_level3_vectors.json").read_text()
)
VECTORS: dict[str, Any] = DATA["vectors"]
RP = RelyingParty(DATA["origin"])  # https://example.org: rp.id example.org

# What py_webauthn cannot verify, and why (asserted, so an upgrade that can shows up).
UNSUPPORTED = {
    "packed-ed448": "Ed448 (COSE -53) is not implemented",
    "tpm-es256": "the vector's TPM manufacturer id 0 is not in the library's list",
    "android-key-es256": "the vector's attestation has an empty x5c",
    "apple-es256": "the vector's chain does not lead to Apple's real root",
    "fido-u2f-es256": "the vector's AAGUID is not all zeros as the library requires",
}
ALL_ALGS = [-7, -8, -257, -35, -36, -37, -258, -259]


def _hex(text: str) -> str:
    return b64(bytes.fromhex(text))


def registration(name: str) -> tuple[str, bytes]:
    reg = VECTORS[name]["registration"]
    cid = _hex(reg["credential_id"])
    credential = {"id": cid, "rawId": cid, "type": "public-key", "response": {
        "clientDataJSON": _hex(reg["clientDataJSON"]),
        "attestationObject": _hex(reg["attestationObject"]),
    }}  # fmt: skip
    return json.dumps(credential), bytes.fromhex(reg["challenge"])


def assertion(name: str, signature: str | None = None) -> tuple[str, bytes]:
    reg, auth = VECTORS[name]["registration"], VECTORS[name]["authentication"]
    cid = _hex(reg["credential_id"])
    credential = {"id": cid, "rawId": cid, "type": "public-key", "response": {
        "clientDataJSON": _hex(auth["clientDataJSON"]),
        "authenticatorData": _hex(auth["authenticatorData"]),
        "signature": _hex(signature or auth["signature"]),
    }}  # fmt: skip
    return json.dumps(credential), bytes.fromhex(auth["challenge"])


def stored(reg: Registered, **changes: Any) -> Passkey:
    key = Passkey(reg.credential_id, "alice", "h", "key", reg.public_key, reg.sign_count,
                  reg.aaguid, tuple(reg.transports), reg.backup_eligible, reg.backed_up,
                  datetime.now(UTC), None)  # fmt: skip
    return replace(key, **changes)


def library_registers(name: str) -> Any:
    text, challenge = registration(name)
    return verify_registration_response(
        credential=json.loads(text), expected_challenge=challenge,
        expected_rp_id=DATA["rp_id"], expected_origin=DATA["origin"],
        supported_pub_key_algs=ALL_ALGS,  # type: ignore[arg-type]
    )  # fmt: skip


SUPPORTED = sorted(set(VECTORS) - set(UNSUPPORTED))


@pytest.mark.parametrize("name", SUPPORTED)
def test_library_verifies_the_vector(name: str) -> None:
    verified = library_registers(name)
    assert b64(verified.credential_id) == _hex(VECTORS[name]["registration"]["credential_id"])
    if name == "packed-es384":
        return  # py_webauthn registers ES384 but cannot verify its assertions
    text, challenge = assertion(name)
    result = verify_authentication_response(
        credential=json.loads(text), expected_challenge=challenge,
        expected_rp_id=DATA["rp_id"], expected_origin=DATA["origin"],
        credential_public_key=verified.credential_public_key, credential_current_sign_count=0,
    )  # fmt: skip
    assert result.credential_id == verified.credential_id


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_vectors_are_refused(name: str) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011 - the library's own exception types
        library_registers(name)


# bastion's policy on top: user verification required, ES256/EdDSA/RS256 only.
UV_AT_REGISTRATION = ["packed-self-es256", "packed-es256", "packed-rs256",
                      "none-es256-crossOrigin"]  # fmt: skip
NO_UV_AT_REGISTRATION = ["none-es256", "none-es256-topOrigin", "packed-eddsa"]


@pytest.mark.parametrize("name", UV_AT_REGISTRATION)
def test_relying_party_registers_user_verified_credentials(name: str) -> None:
    reg = RP.verify_registration(*registration(name))
    flags = int(VECTORS[name]["registration"]["auth_data_UV_BE_BS"], 16)
    assert reg.backup_eligible is bool(flags & 0x08)  # BE
    assert reg.backed_up is bool(flags & 0x10)  # BS
    assert reg.credential_id == _hex(VECTORS[name]["registration"]["credential_id"])


@pytest.mark.parametrize("name", NO_UV_AT_REGISTRATION)
def test_relying_party_refuses_credentials_without_user_verification(name: str) -> None:
    with pytest.raises(PasskeyError):
        RP.verify_registration(*registration(name))


def test_relying_party_refuses_algorithms_outside_its_list() -> None:
    with pytest.raises(PasskeyError):
        RP.verify_registration(*registration("packed-es512"))


def test_assertion_accepted_then_tampering_refused() -> None:
    reg = RP.verify_registration(*registration("packed-es256"))
    ok = RP.verify_authentication(*assertion("packed-es256"), stored(reg))
    assert ok.credential_id == reg.credential_id
    signature = VECTORS["packed-es256"]["authentication"]["signature"]
    bad = signature[:-2] + ("00" if signature[-2:] != "00" else "01")
    with pytest.raises(PasskeyError):
        RP.verify_authentication(*assertion("packed-es256", bad), stored(reg))
    text, _ = assertion("packed-es256")
    with pytest.raises(PasskeyError):  # another challenge
        RP.verify_authentication(text, b"\x00" * 32, stored(reg))
    with pytest.raises(PasskeyError):  # a counter that went backwards: a clone
        RP.verify_authentication(*assertion("packed-es256"), stored(reg, sign_count=10))
    with pytest.raises(PasskeyError):  # another relying party
        RelyingParty("https://example.com").verify_authentication(
            *assertion("packed-es256"), stored(reg)
        )


def test_assertion_without_user_verification_refused() -> None:
    reg = RP.verify_registration(*registration("packed-rs256"))
    assert not int(VECTORS["packed-rs256"]["authentication"]["auth_data_UV_BS"], 16) & 0x04
    with pytest.raises(PasskeyError):
        RP.verify_authentication(*assertion("packed-rs256"), stored(reg))


@pytest.mark.parametrize("text", ["", "{", "[]", '{"id": 1}', "x" * 40000])
def test_malformed_credentials_are_passkey_errors(text: str) -> None:
    with pytest.raises(PasskeyError):
        RP.verify_registration(text, b"c" * 32)
    with pytest.raises(PasskeyError):
        RP.credential_id(text)
