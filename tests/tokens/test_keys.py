"""bastion's own signing keys: encrypted at rest, thumbprint kids, rotation, assertions."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet, import_key
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

from bastion.config import Algorithm
from bastion.errors import InvalidToken
from bastion.keyring import Keyring
from bastion.model import CredentialType, Principal
from bastion.store.models import Base, SigningKey
from bastion.tokens import JwtVerifier
from bastion.tokens.keys import (
    ASSERTION_TYPE,
    AssertionSigner,
    create_signing_key,
    ensure_signing_key,
    generate_private_key,
    load_active_keys,
    publish_jwks,
    retire_key,
)
from tests.tokens._helpers import NOW, FakeClock, issuer

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


@pytest.fixture
async def sessions() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(master=os.urandom(32))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


PRINCIPAL = Principal(
    subject="user-42",
    credential=CredentialType.API_KEY,
    scopes=frozenset({"b", "a"}),
    roles=frozenset({"admin"}),
    client_id="cli",
)


@pytest.mark.parametrize(
    ("alg", "bits", "kty"),
    [
        (Algorithm.ES256, 2048, "EC"),
        (Algorithm.RS256, 2048, "RSA"),
        (Algorithm.RS256, 3072, "RSA"),
        (Algorithm.PS256, 2048, "RSA"),
        (Algorithm.EDDSA, 2048, "OKP"),
    ],
)
async def test_create_and_load(
    sessions: async_sessionmaker[AsyncSession],
    keyring: Keyring,
    clock: FakeClock,
    alg: Algorithm,
    bits: int,
    kty: str,
) -> None:
    async with sessions() as s, s.begin():
        row = await create_signing_key(s, keyring, alg=alg, rsa_bits=bits, clock=clock)
    key = import_key(row.public_jwk)
    assert row.kid == key.thumbprint()  # RFC 7638
    assert row.public_jwk["kty"] == kty
    assert row.public_jwk["alg"] == alg.value
    assert row.public_jwk["use"] == "sig"
    assert not PRIVATE_MEMBERS & row.public_jwk.keys()
    assert "-----" not in row.private_jwk_encrypted
    assert '"d"' not in row.private_jwk_encrypted  # encrypted, not JSON
    if kty == "RSA":
        assert key.raw_value.key_size == bits  # type: ignore[union-attr]
    async with sessions() as s:
        loaded = await load_active_keys(s, keyring, clock=clock)
    assert [k.kid for k in loaded] == [row.kid]
    assert loaded[0].key.is_private
    private_d = str(loaded[0].key.as_dict(private=True)["d"])
    assert "key=" not in repr(loaded[0])
    assert private_d not in repr(loaded[0])
    assert private_d not in row.private_jwk_encrypted


async def test_hs256_is_not_a_signing_key_type() -> None:
    with pytest.raises(ValueError, match="not a signing algorithm"):
        generate_private_key(Algorithm.HS256)
    with pytest.raises(ValueError, match="bits"):
        generate_private_key(Algorithm.RS256, rsa_bits=1024)


async def test_wrong_keyring_cannot_load(
    sessions: async_sessionmaker[AsyncSession], keyring: Keyring, clock: FakeClock
) -> None:
    async with sessions() as s, s.begin():
        await create_signing_key(s, keyring, clock=clock)
    from cryptography.exceptions import InvalidTag

    async with sessions() as s:
        with pytest.raises(InvalidTag):
            await load_active_keys(s, Keyring(master=os.urandom(32)), clock=clock)


async def test_rotation_publishes_pending_and_retiring_keys(
    sessions: async_sessionmaker[AsyncSession], keyring: Keyring, clock: FakeClock
) -> None:
    later = datetime.fromtimestamp(NOW + 3600, UTC)
    async with sessions() as s, s.begin():
        old = await create_signing_key(s, keyring, clock=clock)
        new = await create_signing_key(s, keyring, clock=clock, active_from=later)
    async with sessions() as s:
        jwks = await publish_jwks(s, clock=clock)
        active = await load_active_keys(s, keyring, clock=clock)
    assert {k["kid"] for k in jwks["keys"]} == {old.kid, new.kid}
    assert [k.kid for k in active] == [old.kid]  # the pending key does not sign yet
    for jwk in jwks["keys"]:
        assert not PRIVATE_MEMBERS & jwk.keys()

    clock.advance(3600)
    async with sessions() as s, s.begin():
        await retire_key(s, old.kid, publish_for=timedelta(hours=1), clock=clock)
    async with sessions() as s:
        assert [k.kid for k in await load_active_keys(s, keyring, clock=clock)] == [new.kid]
        assert len((await publish_jwks(s, clock=clock))["keys"]) == 2
    clock.advance(3601)
    async with sessions() as s:
        assert [k["kid"] for k in (await publish_jwks(s, clock=clock))["keys"]] == [new.kid]
        with pytest.raises(LookupError):
            await retire_key(s, "nope", clock=clock)


async def test_assertion_round_trip(
    sessions: async_sessionmaker[AsyncSession], keyring: Keyring, clock: FakeClock
) -> None:
    async with sessions() as s, s.begin():
        await create_signing_key(s, keyring, clock=clock)
    async with sessions() as s:
        signer = await AssertionSigner.load(
            s, keyring, issuer="https://bastion.example", ttl=30, clock=clock
        )
        jwks = await publish_jwks(s, clock=clock)
    token = signer.sign(PRINCIPAL, "https://upstream.example", "req-1")

    # Verified by joserfc itself, with nothing but the published JWKS.
    decoded = jose_jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256"])
    assert decoded.header == {"alg": "ES256", "kid": signer.key.kid, "typ": ASSERTION_TYPE}
    c = decoded.claims
    assert c["iss"] == "https://bastion.example"
    assert c["sub"] == "user-42"
    assert c["aud"] == "https://upstream.example"
    assert c["iat"] == int(NOW)
    assert c["exp"] == int(NOW) + 30
    assert c["scope"] == "a b"
    assert c["roles"] == ["admin"]
    assert c["cred"] == "api_key"
    assert c["client_id"] == "cli"
    assert c["request_id"] == "req-1"
    assert len(c["jti"]) >= 16
    other = signer.sign_assertion(PRINCIPAL, "aud", 60)
    assert jose_jwt.decode(other, KeySet.import_key_set(jwks)).claims["jti"] != c["jti"]


async def test_assertion_is_not_accepted_as_bearer_token(
    sessions: async_sessionmaker[AsyncSession], keyring: Keyring, clock: FakeClock
) -> None:
    async with sessions() as s, s.begin():
        await create_signing_key(s, keyring, clock=clock)
    async with sessions() as s:
        signer = await AssertionSigner.load(s, keyring, issuer="https://b.example", clock=clock)
        jwks = await publish_jwks(s, clock=clock)
    verifier = JwtVerifier.from_config(
        issuer(issuer="https://b.example", audiences=["up"], keys=jwks["keys"]), clock=clock
    )
    with pytest.raises(InvalidToken) as info:
        await verifier.verify(signer.sign(PRINCIPAL, "up"))
    assert info.value.reason == "bad_typ"


async def test_no_active_key(
    sessions: async_sessionmaker[AsyncSession], keyring: Keyring, clock: FakeClock
) -> None:
    async with sessions() as s:
        with pytest.raises(LookupError):
            await AssertionSigner.load(s, keyring, issuer="x", clock=clock)


async def test_ensure_signing_key_is_idempotent(
    sessions: async_sessionmaker[AsyncSession], keyring: Keyring, clock: FakeClock
) -> None:
    first = await ensure_signing_key(sessions, keyring, clock=clock)
    assert await ensure_signing_key(sessions, keyring, clock=clock) == first
    async with sessions() as s:
        assert await s.get(SigningKey, first) is not None


async def test_ensure_signing_key_with_url(tmp_path: Path, keyring: Keyring) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()
    kid = await ensure_signing_key(url, keyring)
    assert kid == await ensure_signing_key(url, keyring)
