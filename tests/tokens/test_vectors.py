"""Wycheproof JWS vectors and RFC 7520 / RFC 8037 examples through bastion's JWS layer.

The vectors sign arbitrary payloads ("foo"), not JWT claims, so they exercise
``parse_compact`` + ``verify_signature`` (everything up to the claims check) with the
group's key and bastion's full algorithm enum as the allow-list.

Where bastion and a Wycheproof label differ, the difference must fall in a documented
class (see ``tests/vectors/wycheproof/README.md``):

* ``alg_policy``: a valid token whose ``alg`` (RS384, RS512, PS384, PS512, ES512) or key
  is outside bastion's allow-list; rejecting it is the policy, stricter than the vector.
* ``strict_base64url``: tcId 372/373 insert ``?`` into the header or payload segment and are
  labelled valid upstream (the character is skipped by lenient decoders); bastion's
  decoder accepts only the base64url alphabet, so it rejects them.
* ``label_defect``: tcId 367/370 ("invalidBase64Padding…") are byte-identical to the valid
  tcId 357 in the upstream file (the padding they describe is missing), so bastion
  accepts them; the test asserts the byte identity, so a corrected file fails loudly here.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from bastion.config import Algorithm
from bastion.errors import InvalidToken
from bastion.tokens._compact import parse_compact
from bastion.tokens._keyset import KeyIndex, KeyRejected, StaticKeySource, import_verification_key
from bastion.tokens.verify import verify_signature

VECTORS = Path(__file__).parent.parent / "vectors"
ALLOWED = frozenset(a.value for a in Algorithm)
POLICY_ALGS = frozenset({"RS384", "RS512", "PS384", "PS512", "ES384", "ES512"})
STRICT_BASE64URL = {372, 373}
LABEL_DEFECT = {367: 357, 370: 357}
PRIVATE = {"d", "p", "q", "dp", "dq", "qi"}


def _wycheproof_cases() -> list[Any]:
    data = json.loads((VECTORS / "wycheproof" / "json_web_signature_test.json").read_text())
    cases = []
    for group in data["testGroups"]:
        jwk = group.get("public") or group["private"]
        for test in group["tests"]:
            cases.append(pytest.param(jwk, test, id=f"tc{test['tcId']}-{test['comment']}"))
    return cases


WYCHEPROOF = _wycheproof_cases()
ALL_JWS = {c.values[1]["tcId"]: c.values[1]["jws"] for c in WYCHEPROOF}


def accepts(jwk: dict[str, Any], token: str) -> bool:
    try:
        key = import_verification_key(jwk, allow_symmetric=jwk.get("kty") == "oct")
    except KeyRejected:
        return False
    source = StaticKeySource(KeyIndex.of([key]))
    try:
        parsed = parse_compact(token)
        asyncio.run(verify_signature(parsed, source, ALLOWED))
    except InvalidToken:
        return False
    return True


def test_wycheproof_file_is_complete() -> None:
    assert len(WYCHEPROOF) == 401


@pytest.mark.parametrize(("jwk", "test"), WYCHEPROOF)
def test_wycheproof_jws(jwk: dict[str, Any], test: dict[str, Any]) -> None:
    tc, token, expected = test["tcId"], test["jws"], test["result"]
    got = "valid" if accepts(jwk, token) else "invalid"
    if got == expected:
        return
    if tc in LABEL_DEFECT:
        assert got == "valid"
        assert token == ALL_JWS[LABEL_DEFECT[tc]]  # identical to a case labelled valid
        return
    assert expected == "valid", f"tc{tc}: bastion accepted a token Wycheproof calls invalid"
    header_alg = json.loads(_b64json(token.split(".")[0])).get("alg")
    in_policy = header_alg in POLICY_ALGS or jwk.get("alg") in POLICY_ALGS
    assert in_policy or tc in STRICT_BASE64URL, f"tc{tc}: rejected outside a policy class"


def _b64json(segment: str) -> bytes:
    import base64

    cleaned = "".join(c for c in segment if c.isalnum() or c in "-_")
    return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))


def test_wycheproof_alg_none_and_key_confusion_cases_all_rejected() -> None:
    for case in WYCHEPROOF:
        jwk, test = case.values
        if (
            "AlgIsNone" in test["flags"]
            or "Symmetry" in test["comment"]
            or "Jwk" in test["comment"]
        ):
            assert not accepts(jwk, test["jws"]), test["tcId"]


def _rfc(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / "rfc7520" / name).read_text())
    return data


def _public(jwk: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in jwk.items() if k not in PRIVATE}


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("jws/4_1.rsa_v15_signature.json", True),  # RS256
        ("jws/4_2.rsa-pss_signature.json", False),  # PS384: not on bastion's list
        ("jws/4_3.ecdsa_signature.json", False),  # ES512: not on bastion's list
        ("jws/4_4.hmac-sha2_integrity_protection.json", True),  # HS256 with a shared secret
        ("curve25519/jws.json", True),  # RFC 8037 A.4 EdDSA / Ed25519
    ],
)
def test_rfc7520_examples(name: str, accepted: bool) -> None:
    example = _rfc(name)
    key = example["input"]["key"]
    token = example["output"]["compact"]
    assert parse_compact(token).payload == example["input"]["payload"].encode()
    if key["kty"] == "oct":
        assert accepts(key, token) is accepted
        return
    public = _public(key)
    if accepted:
        assert accepts(public, token)
        return
    # Refused by the allow-list, even with the key's own alg allowed.
    keys = StaticKeySource(KeyIndex.of([]))
    with pytest.raises(InvalidToken) as info:
        asyncio.run(verify_signature(parse_compact(token), keys, ALLOWED))
    assert info.value.reason == "alg_not_allowed"


@pytest.mark.parametrize("name", ["jwk/3_1.ec_public_key.json", "jwk/3_3.rsa_public_key.json"])
def test_rfc7520_public_keys_import_per_policy(name: str) -> None:
    jwk = json.loads((VECTORS / "rfc7520" / name).read_text())
    if jwk["kty"] == "EC":  # P-521: bastion verifies P-256 only
        with pytest.raises(KeyRejected, match="unsupported_curve"):
            import_verification_key(jwk)
    else:
        key = import_verification_key(jwk)
        assert key.algorithms == {"RS256", "PS256"}
        assert key.kid == "bilbo.baggins@hobbiton.example"
