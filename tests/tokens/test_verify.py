"""JwtVerifier: every attack class sends its bad token and must get its reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from joserfc.jwk import OctKey

from bastion.errors import InvalidToken
from bastion.model import CredentialType
from bastion.tokens import JwtVerifier, mint_jwt
from bastion.tokens._compact import b64url_encode
from tests.tokens._helpers import (
    AUD,
    EC_KEY,
    EC_KEY_2,
    EC_KID,
    ED_KEY,
    ED_KID,
    HS_SECRET,
    ISS,
    NOW,
    RSA_KEY,
    RSA_KID,
    FakeClock,
    claims,
    es256,
    hs_issuer,
    issuer,
    pub,
)


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return b64url_encode(raw)


def unsigned(header: dict[str, Any], payload: dict[str, Any], sig: str = "") -> str:
    return f"{b64(json.dumps(header))}.{b64(json.dumps(payload))}.{sig}"


def hs256_with(secret: bytes, kid: str) -> str:
    """HS256 computed by hand: joserfc itself refuses a PEM public key as an oct key."""
    head = b64(json.dumps({"alg": "HS256", "kid": kid}))
    signing_input = f"{head}.{b64(json.dumps(claims()))}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verifier(clock: FakeClock) -> JwtVerifier:
    return JwtVerifier.from_config(issuer(), clock=clock)


async def reason_of(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as info:
        await verifier.verify(token)
    return info.value.reason


async def test_valid_es256_gives_principal(verifier: JwtVerifier) -> None:
    principal = await verifier.verify(es256())
    assert principal.subject == "user-42"
    assert principal.credential is CredentialType.JWT
    assert principal.scopes == {"orders:read", "orders:write"}
    assert principal.roles == {"admin"}
    assert principal.issuer == ISS
    assert principal.client_id == "cli"
    assert principal.key_id == EC_KID
    assert principal.expires_at == NOW + 600
    assert principal.claims["jti"] == "jti-1"
    with pytest.raises(TypeError):
        principal.claims["sub"] = "someone-else"  # type: ignore[index]


@pytest.mark.parametrize(
    ("key", "alg", "kid"),
    [(RSA_KEY, "RS256", RSA_KID), (RSA_KEY, "PS256", RSA_KID), (ED_KEY, "EdDSA", ED_KID)],
)
async def test_other_allowed_algorithms(
    verifier: JwtVerifier, key: Any, alg: str, kid: str
) -> None:
    if alg == "PS256":  # the RSA JWK names RS256, so PS256 with it is refused
        assert await reason_of(verifier, mint_jwt(key, claims(), alg, kid)) == "alg_key_mismatch"
        return
    assert (await verifier.verify(mint_jwt(key, claims(), alg, kid))).key_id == kid


async def test_hs256_issuer(clock: FakeClock) -> None:
    v = JwtVerifier.from_config(hs_issuer(), clock=clock)
    secret = OctKey.import_key(HS_SECRET.encode())
    token = mint_jwt(secret, claims(iss="https://hs.example"), "HS256", "whatever")
    assert (await v.verify(token)).subject == "user-42"
    wrong = OctKey.import_key(b"x" * 40)
    bad = mint_jwt(wrong, claims(iss="https://hs.example"), "HS256")
    assert await reason_of(v, bad) == "bad_signature"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("sig", ["", "c2ln"])
async def test_alg_none_in_any_case(verifier: JwtVerifier, alg: str, sig: str) -> None:
    token = unsigned({"alg": alg, "kid": EC_KID}, claims(), sig)
    assert await reason_of(verifier, token) == "alg_not_allowed"


async def test_empty_signature(verifier: JwtVerifier) -> None:
    head, body, _ = es256().split(".")
    assert await reason_of(verifier, f"{head}.{body}.") == "bad_signature"


async def test_signature_of_wrong_length(verifier: JwtVerifier) -> None:
    head, body, sig = es256().split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    for bad in (raw[:-1], raw + b"\0", raw[:32]):
        assert await reason_of(verifier, f"{head}.{body}.{b64(bad)}") == "bad_signature"


@pytest.mark.parametrize(("key", "kid"), [(RSA_KEY, RSA_KID), (EC_KEY, EC_KID)])
@pytest.mark.parametrize("form", ["pem", "jwk_json"])
async def test_key_confusion_hs256_with_public_key(
    verifier: JwtVerifier, key: Any, kid: str, form: str
) -> None:
    # The attacker signs HS256 with the issuer's *public* key bytes as the HMAC secret.
    public = key.as_pem(private=False) if form == "pem" else json.dumps(pub(key, kid, "x")).encode()
    assert await reason_of(verifier, hs256_with(public, kid)) == "alg_not_allowed"


async def test_key_confusion_even_if_hs256_were_allowed(clock: FakeClock) -> None:
    # Belt and braces: with HS256 on the list, an EC key still cannot verify HS256.
    from bastion.tokens._compact import parse_compact
    from bastion.tokens._keyset import StaticKeySource
    from bastion.tokens.verify import verify_signature

    keys = StaticKeySource.from_jwks([pub(EC_KEY, EC_KID, "ES256")])
    token = hs256_with(EC_KEY.as_pem(private=False), EC_KID)
    with pytest.raises(InvalidToken) as info:
        await verify_signature(parse_compact(token), keys, frozenset({"HS256", "ES256"}))
    assert info.value.reason == "alg_key_mismatch"


@pytest.mark.parametrize("name", ["jwk", "jku", "x5u", "x5c"])
async def test_embedded_keys_refused(verifier: JwtVerifier, name: str) -> None:
    values = {
        "jwk": pub(EC_KEY_2, EC_KID, "ES256"),
        "jku": "https://attacker.example/jwks",
        "x5u": "https://attacker.example/cert",
        "x5c": ["MIIB"],
    }
    token = mint_jwt(EC_KEY, claims(), "ES256", EC_KID, headers={name: values[name]})
    assert await reason_of(verifier, token) == "embedded_key"


async def test_attacker_embedded_jwk_signed_with_attacker_key(verifier: JwtVerifier) -> None:
    token = mint_jwt(
        EC_KEY_2, claims(), "ES256", EC_KID, headers={"jwk": pub(EC_KEY_2, EC_KID, "ES256")}
    )
    assert await reason_of(verifier, token) == "embedded_key"


@pytest.mark.parametrize("crit", [["exp"], ["b64"], ["urn:x"], []])
async def test_crit_refused(verifier: JwtVerifier, crit: list[str]) -> None:
    token = es256(crit=crit, **{c: True for c in crit if c != "b64"})
    assert await reason_of(verifier, token) == "unknown_crit"


async def test_unencoded_payload_header_refused(verifier: JwtVerifier) -> None:
    assert await reason_of(verifier, es256(b64=False)) == "unsupported_header"


@pytest.mark.parametrize("typ", ["dpop+jwt", "logout+jwt", 7, "bastion-assertion+jwt"])
async def test_wrong_typ(verifier: JwtVerifier, typ: Any) -> None:
    assert await reason_of(verifier, es256(typ=typ)) == "bad_typ"


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "application/at+JWT"])
async def test_access_token_typ_accepted(verifier: JwtVerifier, typ: str) -> None:
    assert (await verifier.verify(es256(typ=typ))).subject == "user-42"


def _mangle(token: str, part: int, how: str) -> str:
    parts = token.split(".")
    seg = parts[part]
    if how == "padding":
        seg = seg + "=" * (-len(seg) % 4 or 4)
    elif how == "std_alphabet":
        seg = base64.b64encode(base64.urlsafe_b64decode(seg + "==")).decode().rstrip("=")
        if "+" not in seg and "/" not in seg:
            seg = seg[:-1] + "+"
    elif how == "whitespace":
        seg = seg[:5] + " " + seg[5:]
    elif how == "newline":
        seg = seg[:5] + "\n" + seg[5:]
    elif how == "bad_char":
        seg = seg[:5] + "?" + seg[5:]
    elif how == "len_mod_4_is_1":
        seg = seg + "A" * ((1 - len(seg)) % 4)
    parts[part] = seg
    return ".".join(parts)


@pytest.mark.parametrize("part", [0, 1, 2])
@pytest.mark.parametrize(
    "how", ["padding", "std_alphabet", "whitespace", "newline", "bad_char", "len_mod_4_is_1"]
)
async def test_bad_base64url(verifier: JwtVerifier, part: int, how: str) -> None:
    token = _mangle(es256(), part, how)
    assert await reason_of(verifier, token) in {"malformed", "bad_signature"}
    # The syntax layer itself refuses every variant (not just the signature check).
    from bastion.tokens._compact import parse_compact

    with pytest.raises(InvalidToken):
        parse_compact(token).claims()


async def test_non_canonical_trailing_bits(verifier: JwtVerifier) -> None:
    head, body, sig = es256().split(".")
    # Flip unused low bits of the last character: same bytes for a lax decoder.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    sig2 = sig[:-1] + alphabet[last | 1] if last & 1 == 0 else sig[:-1] + alphabet[last & ~1]
    assert await reason_of(verifier, f"{head}.{body}.{sig2}") == "malformed"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",
        ".e30.c2ln",
        "header.payload.",
        "eyJhbGciOiJFUzI1NiJ9.e30.c2ln.",
    ],
)
async def test_wrong_number_of_parts(verifier: JwtVerifier, token: str) -> None:
    assert await reason_of(verifier, token) in {"malformed", "bad_alg"}


@pytest.mark.parametrize(
    "header",
    [b"[]", b'"ES256"', b"not json", b'{"alg":"ES256","alg":"none"}', b"{}", b'{"alg":1}'],
)
async def test_bad_header_json(verifier: JwtVerifier, header: bytes) -> None:
    _, body, sig = es256().split(".")
    assert await reason_of(verifier, f"{b64(header)}.{body}.{sig}") in {"malformed", "bad_alg"}


@pytest.mark.parametrize(
    "payload",
    [b"[]", b"null", b"\xff\xfe", b'{"sub":"a","sub":"b"}', b'{"exp":NaN}', b""],
)
async def test_bad_payload_json(verifier: JwtVerifier, payload: bytes) -> None:
    header = {"alg": "ES256", "kid": EC_KID}
    from joserfc.jws import JWSRegistry

    signing_input = f"{b64(json.dumps(header))}.{b64(payload)}"
    sig = JWSRegistry.algorithms["ES256"].sign(signing_input.encode(), EC_KEY)
    assert await reason_of(verifier, f"{signing_input}.{b64(sig)}") == "malformed_claims"


async def test_expired(verifier: JwtVerifier, clock: FakeClock) -> None:
    token = es256(claims(exp=int(NOW) + 10))
    assert (await verifier.verify(token)).subject
    clock.advance(10 + 59)  # inside the 60 s leeway
    assert (await verifier.verify(token)).subject
    clock.advance(1)
    assert await reason_of(verifier, token) == "expired"


async def test_nbf_in_future(verifier: JwtVerifier) -> None:
    assert await reason_of(verifier, es256(claims(nbf=NOW + 61))) == "not_yet_valid"
    assert (await verifier.verify(es256(claims(nbf=NOW + 60)))).subject


async def test_iat_in_future(verifier: JwtVerifier) -> None:
    assert await reason_of(verifier, es256(claims(iat=NOW + 61))) == "iat_in_future"


async def test_max_token_age(clock: FakeClock) -> None:
    v = JwtVerifier.from_config(issuer(max_token_age_seconds=300), clock=clock)
    token = es256(claims(exp=NOW + 3600))
    clock.advance(300 + 60)
    assert (await v.verify(token)).subject
    clock.advance(1)
    assert await reason_of(v, token) == "too_old"
    assert await reason_of(v, es256(claims(iat=None))) == "missing_iat"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"iss": "https://issuer.example/"}, "bad_issuer"),
        ({"iss": "https://ISSUER.example"}, "bad_issuer"),
        ({"iss": None}, "bad_issuer"),
        ({"aud": "api://other"}, "bad_audience"),
        ({"aud": ["api://other", "api://x"]}, "bad_audience"),
        ({"aud": []}, "bad_audience"),
        ({"aud": None}, "missing_aud"),
        ({"aud": 5}, "malformed_claims"),
        ({"exp": None}, "missing_exp"),
        ({"exp": "1750000600"}, "malformed_claims"),
        ({"exp": True}, "malformed_claims"),
        ({"exp": 1e300}, "malformed_claims"),
        ({"nbf": "soon"}, "malformed_claims"),
        ({"sub": None}, "missing_sub"),
        ({"sub": ""}, "missing_sub"),
        ({"sub": 42}, "missing_sub"),
        ({"jti": 1}, "malformed_claims"),
        ({"scope": 5}, "bad_scope_claim"),
        ({"roles": "admin"}, "bad_roles_claim"),
        ({"client_id": 3}, "bad_client_id"),
    ],
)
async def test_bad_claims(verifier: JwtVerifier, change: dict[str, Any], reason: str) -> None:
    assert await reason_of(verifier, es256(claims(**change))) == reason


async def test_audience_list_intersects(verifier: JwtVerifier) -> None:
    principal = await verifier.verify(es256(claims(aud=["api://other", AUD])))
    assert principal.subject == "user-42"


async def test_scp_list_and_nested_roles(clock: FakeClock) -> None:
    v = JwtVerifier.from_config(issuer(roles_claim="realm_access.roles"), clock=clock)
    token = es256(claims(scope=None, scp=["a", "b"], roles=None, realm_access={"roles": ["r"]}))
    principal = await v.verify(token)
    assert principal.scopes == {"a", "b"}
    assert principal.roles == {"r"}


async def test_azp_as_client_id(verifier: JwtVerifier) -> None:
    principal = await verifier.verify(es256(claims(client_id=None, azp="spa")))
    assert principal.client_id == "spa"


async def test_unknown_kid_static(verifier: JwtVerifier) -> None:
    token = mint_jwt(EC_KEY, claims(), "ES256", "nope")
    assert await reason_of(verifier, token) == "unknown_kid"


async def test_same_kid_other_key(verifier: JwtVerifier) -> None:
    token = mint_jwt(EC_KEY_2, claims(), "ES256", EC_KID)
    assert await reason_of(verifier, token) == "bad_signature"


async def test_missing_kid_with_one_fitting_key(verifier: JwtVerifier) -> None:
    token = mint_jwt(EC_KEY, claims(), "ES256")
    assert (await verifier.verify(token)).key_id == EC_KID


async def test_missing_kid_with_two_fitting_keys(clock: FakeClock) -> None:
    keys = [pub(EC_KEY, "a", "ES256"), pub(EC_KEY_2, "b", "ES256")]
    v = JwtVerifier.from_config(issuer(keys=keys), clock=clock)
    assert await reason_of(v, mint_jwt(EC_KEY, claims(), "ES256")) == "missing_kid"


async def test_alg_allow_list_narrower_than_keys(clock: FakeClock) -> None:
    v = JwtVerifier.from_config(issuer(algorithms=["ES256"]), clock=clock)
    token = mint_jwt(RSA_KEY, claims(), "RS256", RSA_KID)
    assert await reason_of(v, token) == "alg_not_allowed"


@pytest.mark.parametrize("alg", ["RS384", "ES384", "HS512", "PS512", "ES256K", "A128KW", "dir"])
async def test_algorithms_outside_the_enum(verifier: JwtVerifier, alg: str) -> None:
    token = unsigned({"alg": alg, "kid": EC_KID}, claims(), "c2ln")
    assert await reason_of(verifier, token) == "alg_not_allowed"


async def test_oversized_token(verifier: JwtVerifier) -> None:
    token = es256(claims(pad="x" * 9000))
    assert await reason_of(verifier, token) == "too_large"


async def test_non_ascii_token(verifier: JwtVerifier) -> None:
    token = es256()
    assert await reason_of(verifier, token[:10] + "é" + token[10:]) == "malformed"
