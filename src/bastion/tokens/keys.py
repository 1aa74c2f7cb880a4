"""bastion's own signing keys: generation, encrypted storage, JWKS, identity assertions.

Private JWKs are stored encrypted with ``Keyring.encrypt(purpose="signing-key")``; the
``kid`` is the RFC 7638 thumbprint. A key signs from ``active_from`` until it is retired and
stays in the published JWKS until ``retire_after``, so verifiers can pre-fetch a key before
it signs and keep verifying its tokens after it stops (rotation without a gap).

Functions take an ``AsyncSession``; the caller owns the transaction (commit or roll back).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey, import_key
from joserfc.jws import JWSRegistry
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bastion.config import Algorithm
from bastion.keyring import Keyring
from bastion.model import Clock, Principal, system_clock
from bastion.store.models import SigningKey
from bastion.tokens._compact import b64url_encode

KEYRING_PURPOSE = "signing-key"
ASSERTION_PURPOSE = "assertion"
ASSERTION_TYPE = "bastion-assertion+jwt"
"""``typ`` of identity assertions (RFC 8725 §3.11): bastion's own bearer verifier refuses
this type, so an assertion captured upstream cannot be replayed as an access token."""
SIGNING_ALGORITHMS = (Algorithm.ES256, Algorithm.RS256, Algorithm.PS256, Algorithm.EDDSA)
RSA_SIZES = (2048, 3072, 4096)


def _utc(clock: Clock) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


def generate_private_key(alg: Algorithm = Algorithm.ES256, *, rsa_bits: int = 2048) -> Key:
    """A fresh private key for ``alg``: P-256, RSA (2048/3072/4096 bits) or Ed25519."""
    if alg == Algorithm.ES256:
        return ECKey.generate_key("P-256", private=True)
    if alg in (Algorithm.RS256, Algorithm.PS256):
        if rsa_bits not in RSA_SIZES:
            raise ValueError(f"RSA keys must be one of {RSA_SIZES} bits")
        return RSAKey.generate_key(rsa_bits, private=True)
    if alg == Algorithm.EDDSA:
        return OKPKey.generate_key("Ed25519", private=True)
    raise ValueError(f"{alg} is not a signing algorithm for bastion's own keys")


def public_jwk(key: Key, alg: str) -> dict[str, Any]:
    """The public JWK of ``key`` with ``kid`` (thumbprint), ``alg`` and ``use: sig``."""
    jwk: dict[str, Any] = dict(key.as_dict(private=False))
    for member in ("d", "p", "q", "dp", "dq", "qi", "oth", "k"):
        jwk.pop(member, None)
    jwk.update(kid=key.thumbprint(), alg=alg, use="sig")
    return jwk


@dataclass(frozen=True, slots=True)
class LoadedSigningKey:
    """A decrypted signing key ready to sign; ``repr`` never shows it."""

    kid: str
    alg: str
    key: Key = field(repr=False)
    active_from: datetime


async def create_signing_key(
    session: AsyncSession,
    keyring: Keyring,
    *,
    alg: Algorithm = Algorithm.ES256,
    purpose: str = ASSERTION_PURPOSE,
    rsa_bits: int = 2048,
    active_from: datetime | None = None,
    clock: Clock = system_clock,
) -> SigningKey:
    """Generate a key and add it to ``session`` (encrypted); the caller commits.

    Args:
        session: the open session.
        keyring: encrypts the private JWK.
        alg: ES256 (default), RS256, PS256 or EdDSA.
        purpose: what the key signs (``assertion``; later ``access-token``, ``id-token``).
        rsa_bits: RSA modulus size.
        active_from: when it starts signing (default now); publish ahead to pre-distribute.
        clock: seconds since the epoch.
    """
    key = generate_private_key(alg, rsa_bits=rsa_bits)
    public = public_jwk(key, alg.value)
    private = dict(key.as_dict(private=True)) | {"kid": public["kid"], "alg": alg.value}
    now = _utc(clock)
    row = SigningKey(
        kid=public["kid"],
        alg=alg.value,
        purpose=purpose,
        public_jwk=public,
        private_jwk_encrypted=keyring.encrypt(
            json.dumps(private).encode(), purpose=KEYRING_PURPOSE
        ),
        created_at=now,
        active_from=active_from or now,
        retired_at=None,
        retire_after=None,
    )
    session.add(row)
    await session.flush()
    return row


async def load_active_keys(
    session: AsyncSession,
    keyring: Keyring,
    *,
    purpose: str = ASSERTION_PURPOSE,
    clock: Clock = system_clock,
) -> list[LoadedSigningKey]:
    """Decrypt the keys that may sign now, newest ``active_from`` first."""
    now = _utc(clock)
    rows = await session.scalars(
        select(SigningKey)
        .where(
            SigningKey.purpose == purpose,
            SigningKey.active_from <= now,
            SigningKey.retired_at.is_(None),
        )
        .order_by(SigningKey.active_from.desc(), SigningKey.kid)
    )
    loaded = []
    for row in rows:
        raw = keyring.decrypt(row.private_jwk_encrypted, purpose=KEYRING_PURPOSE)
        key = import_key(json.loads(raw))
        if key.thumbprint() != row.kid:
            raise ValueError(f"signing key {row.kid}: stored key does not match its kid")
        loaded.append(LoadedSigningKey(row.kid, row.alg, key, row.active_from))
    return loaded


async def publish_jwks(
    session: AsyncSession, *, purpose: str | None = None, clock: Clock = system_clock
) -> dict[str, list[dict[str, Any]]]:
    """The public JWKS: every key not past ``retire_after`` (pending keys included)."""
    now = _utc(clock)
    query = select(SigningKey).where(
        or_(SigningKey.retire_after.is_(None), SigningKey.retire_after > now)
    )
    if purpose is not None:
        query = query.where(SigningKey.purpose == purpose)
    rows = await session.scalars(query.order_by(SigningKey.active_from.desc(), SigningKey.kid))
    return {"keys": [_public_only(row.public_jwk) for row in rows]}


def _public_only(jwk: Mapping[str, Any]) -> dict[str, Any]:
    # Defence in depth: whatever the row holds, only public members leave.
    return {k: v for k, v in jwk.items() if k not in {"d", "p", "q", "dp", "dq", "qi", "k"}}


async def retire_key(
    session: AsyncSession,
    kid: str,
    *,
    publish_for: timedelta = timedelta(days=1),
    clock: Clock = system_clock,
) -> None:
    """Stop signing with ``kid`` now; keep it published for ``publish_for``.

    Raises:
        LookupError: no such key.
    """
    row = await session.get(SigningKey, kid)
    if row is None:
        raise LookupError(kid)
    now = _utc(clock)
    row.retired_at = now
    row.retire_after = now + publish_for
    await session.flush()


class AssertionSigner:
    """Signs the gateway's identity assertion for upstreams with one pre-loaded key.

    The header is encoded once; each call encodes the claims and signs (no decryption, no
    database access). Use :meth:`load` to pick the newest active key.
    """

    def __init__(
        self,
        key: LoadedSigningKey,
        issuer: str,
        *,
        ttl: int = 60,
        clock: Clock = system_clock,
    ) -> None:
        self.key = key
        self.issuer = issuer
        self.ttl = ttl
        self._clock = clock
        header = {"alg": key.alg, "kid": key.kid, "typ": ASSERTION_TYPE}
        self._header_b64 = b64url_encode(orjson.dumps(header))
        self._alg = JWSRegistry.algorithms[key.alg]

    @classmethod
    async def load(
        cls,
        session: AsyncSession,
        keyring: Keyring,
        *,
        issuer: str,
        purpose: str = ASSERTION_PURPOSE,
        ttl: int = 60,
        clock: Clock = system_clock,
    ) -> AssertionSigner:
        """A signer with the newest active key of ``purpose``.

        Args:
            session: an open session (only read).
            keyring: decrypts the key once, here.
            issuer: the ``iss`` of the assertions (bastion's public URL).
            purpose: which keys.
            ttl: default lifetime of an assertion, seconds (``identity.assertion_ttl_seconds``).
            clock: seconds since the epoch.

        Raises:
            LookupError: no active key (create one with :func:`create_signing_key`).
        """
        keys = await load_active_keys(session, keyring, purpose=purpose, clock=clock)
        if not keys:
            raise LookupError(f"no active signing key for {purpose!r}")
        return cls(keys[0], issuer, ttl=ttl, clock=clock)

    def sign(self, principal: Principal, audience: str, request_id: str = "") -> str:
        """The gateway's ``AssertionSigner`` protocol: default ttl and clock."""
        return self.sign_assertion(
            principal, audience, self.ttl, self._clock, request_id=request_id
        )

    def sign_assertion(
        self,
        principal: Principal,
        audience: str,
        ttl: int,
        clock: Clock | None = None,
        *,
        request_id: str = "",
    ) -> str:
        """A compact JWT asserting ``principal`` to ``audience`` for ``ttl`` seconds."""
        now = int((clock or self._clock)())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": principal.subject,
            "aud": audience,
            "iat": now,
            "exp": now + ttl,
            "jti": secrets.token_urlsafe(16),
            "scope": " ".join(sorted(principal.scopes)),
            "roles": sorted(principal.roles),
            "cred": principal.credential.value,
        }
        if principal.client_id is not None:
            claims["client_id"] = principal.client_id
        if request_id:
            claims["request_id"] = request_id
        signing_input = f"{self._header_b64}.{b64url_encode(orjson.dumps(claims))}"
        signature = self._alg.sign(signing_input.encode("ascii"), self.key.key)
        return f"{signing_input}.{b64url_encode(signature)}"


async def ensure_signing_key(
    database: str | async_sessionmaker[AsyncSession],
    keyring: Keyring,
    *,
    purpose: str = ASSERTION_PURPOSE,
    alg: Algorithm = Algorithm.ES256,
    clock: Clock = system_clock,
) -> str:
    """Make sure a key of ``purpose`` can sign now; create one if not. Returns its ``kid``.

    Args:
        database: a storage URL (``Config.database_url``) or a session factory.
        keyring: the deployment's keyring.
        purpose: which keys.
        alg: the algorithm of a new key.
        clock: seconds since the epoch.
    """
    if isinstance(database, str):
        from bastion.store.engine import async_engine, session_factory

        engine = async_engine(database)
        try:
            return await ensure_signing_key(
                session_factory(engine), keyring, purpose=purpose, alg=alg, clock=clock
            )
        finally:
            await engine.dispose()
    async with database() as session, session.begin():
        now = _utc(clock)
        existing = await session.scalar(
            select(SigningKey.kid)
            .where(
                SigningKey.purpose == purpose,
                SigningKey.active_from <= now,
                SigningKey.retired_at.is_(None),
            )
            .limit(1)
        )
        if existing is not None:
            return existing
        row = await create_signing_key(session, keyring, alg=alg, purpose=purpose, clock=clock)
        return row.kid
