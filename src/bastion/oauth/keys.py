"""The authorization server's signing keys (RFC 7517 JWKS, RFC 7638 ``kid``), with rotation.

One key per algorithm signs: RS256 (OpenID Connect's mandatory ID-token algorithm),
ES256 (the default for access tokens: ~30x faster to sign than RSA) and EdDSA. Keys are
the ``oauth`` purpose rows of ``signing_keys`` (private part encrypted with the keyring,
see :mod:`bastion.tokens.keys`).

Rotation (``bastion jwks rotate``) adds a key per algorithm that is *published now and
signs later* (``active_from`` in the future), so verifiers fetch it before they meet it;
the old key stays published until ``retire_after`` = the new key's start plus the longest
token lifetime, so every token it signed can still be verified until it expires.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from joserfc.jws import JWSRegistry
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bastion.config import Algorithm
from bastion.keyring import Keyring
from bastion.model import Clock, system_clock
from bastion.store.engine import async_engine, session_factory
from bastion.store.models import SigningKey
from bastion.tokens._compact import b64url_encode
from bastion.tokens._keyset import KeyIndex, import_verification_key
from bastion.tokens.keys import (
    LoadedSigningKey,
    create_signing_key,
    load_active_keys,
    publish_jwks,
)

PURPOSE = "oauth"
ALGORITHMS = (Algorithm.RS256, Algorithm.ES256, Algorithm.EDDSA)
RELOAD_SECONDS = 30.0
UNKNOWN_KID_RELOAD_SECONDS = 5.0


def _utc(clock: Clock) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


def _signing_now(row: SigningKey, now: datetime) -> bool:
    return (
        row.active_from <= now
        and row.retired_at is None
        and (row.retire_after is None or row.retire_after > now)
    )


async def ensure_oauth_keys(
    database: str | async_sessionmaker[AsyncSession],
    keyring: Keyring,
    *,
    clock: Clock = system_clock,
) -> list[str]:
    """Make sure one key per algorithm of :data:`ALGORITHMS` can sign now; return new kids.

    Called by ``bastion init`` (idempotent).
    """
    if isinstance(database, str):
        engine = async_engine(database)
        try:
            return await ensure_oauth_keys(session_factory(engine), keyring, clock=clock)
        finally:
            await engine.dispose()
    created = []
    async with database() as session, session.begin():
        now = _utc(clock)
        rows = (
            await session.scalars(select(SigningKey).where(SigningKey.purpose == PURPOSE))
        ).all()
        for alg in ALGORITHMS:
            if not any(r.alg == alg.value and _signing_now(r, now) for r in rows):
                row = await create_signing_key(
                    session, keyring, alg=alg, purpose=PURPOSE, clock=clock
                )
                created.append(row.kid)
    return created


async def rotate_oauth_keys(
    session: AsyncSession,
    keyring: Keyring,
    *,
    publish_ahead: timedelta,
    keep_old_for: timedelta,
    algorithms: Sequence[Algorithm] = ALGORITHMS,
    clock: Clock = system_clock,
) -> list[SigningKey]:
    """Add a key per algorithm that signs from ``now + publish_ahead``; schedule the old ones.

    Args:
        session: the caller commits.
        keyring: encrypts the new private keys.
        publish_ahead: how long the new key is published before it signs (verifiers' JWKS
            cache time, at least).
        keep_old_for: how long an old key stays published after the new one starts
            signing (the longest lifetime of a token it signed).
        algorithms: which algorithms to rotate.
        clock: seconds since the epoch.
    """
    now = _utc(clock)
    starts = now + publish_ahead
    rows = (await session.scalars(select(SigningKey).where(SigningKey.purpose == PURPOSE))).all()
    created = []
    for alg in algorithms:
        for old in rows:
            if old.alg == alg.value and old.retired_at is None and old.retire_after is None:
                old.retire_after = starts + keep_old_for
        created.append(
            await create_signing_key(
                session, keyring, alg=alg, purpose=PURPOSE, active_from=starts, clock=clock
            )
        )
    await session.flush()
    return created


async def list_oauth_keys(session: AsyncSession) -> list[SigningKey]:
    rows = await session.scalars(
        select(SigningKey)
        .where(SigningKey.purpose == PURPOSE)
        .order_by(SigningKey.alg, SigningKey.active_from)
    )
    return list(rows)


def key_states(rows: Sequence[SigningKey], now: datetime) -> dict[str, str]:
    """Each key's state: ``pending`` (published, not signing yet), ``active`` (the newest
    started key of its algorithm), ``retiring`` (published only) or ``expired``."""
    states: dict[str, str] = {}
    signing: dict[str, SigningKey] = {}
    for row in rows:
        if row.retire_after is not None and row.retire_after <= now:
            states[row.kid] = "expired"
        elif row.active_from > now:
            states[row.kid] = "pending"
        elif row.retired_at is not None:
            states[row.kid] = "retiring"
        else:
            best = signing.get(row.alg)
            if best is None or row.active_from > best.active_from:
                signing[row.alg] = row
            states[row.kid] = "retiring"
    for row in signing.values():
        states[row.kid] = "active"
    return states


class SigningKeys:
    """The keys this process signs with and the public JWKS, reloaded from the database.

    Signing is synchronous and does no I/O (it runs inside Authlib's hooks); :meth:`reload`
    runs on the event loop, periodically and when a token names a ``kid`` not yet known.
    """

    def __init__(self, engine: AsyncEngine, keyring: Keyring, *, clock: Clock = system_clock):
        self._sessions = session_factory(engine)
        self._keyring = keyring
        self._clock = clock
        self._signers: dict[str, LoadedSigningKey] = {}
        self._jwks: dict[str, Any] = {"keys": []}
        self._oauth_public: list[dict[str, Any]] = []
        self._index = KeyIndex.of([])
        self._loaded_at = 0.0
        self._next_change = float("inf")

    async def reload(self) -> None:
        async with self._sessions() as session:
            loaded = await load_active_keys(
                session, self._keyring, purpose=PURPOSE, clock=self._clock
            )
            jwks = await publish_jwks(session, clock=self._clock)
            now = _utc(self._clock)
            upcoming = await session.scalars(
                select(SigningKey.active_from).where(
                    SigningKey.purpose == PURPOSE,
                    or_(SigningKey.active_from > now, SigningKey.retire_after > now),
                )
            )
            changes = [moment.timestamp() for moment in upcoming]
            retiring = await session.scalars(
                select(SigningKey.kid).where(
                    SigningKey.purpose == PURPOSE, SigningKey.retire_after <= now
                )
            )
            expired = set(retiring)
            oauth_rows = set(
                await session.scalars(select(SigningKey.kid).where(SigningKey.purpose == PURPOSE))
            )
        signers: dict[str, LoadedSigningKey] = {}
        for key in loaded:  # newest active_from first
            if key.kid not in expired:
                signers.setdefault(key.alg, key)
        self._signers = signers
        self._jwks = jwks
        self._oauth_public = [k for k in jwks["keys"] if k.get("kid") in oauth_rows]
        self._index = KeyIndex.of(import_verification_key(k) for k in self._oauth_public)
        self._loaded_at = time.monotonic()
        future = [c for c in changes if c > self._clock()]
        self._next_change = min(future) if future else float("inf")

    def stale(self) -> bool:
        """Whether a periodic reload is due (or a pending key has started signing)."""
        return (
            time.monotonic() - self._loaded_at > RELOAD_SECONDS
            or self._clock() >= self._next_change
        )

    def signer(self, alg: str) -> LoadedSigningKey:
        """The key that signs ``alg`` now. Raises LookupError when there is none."""
        try:
            return self._signers[alg]
        except KeyError:
            raise LookupError(f"no active {alg} signing key (run 'bastion init')") from None

    def sign(self, claims: dict[str, Any], *, alg: str, typ: str) -> str:
        """A compact JWS of ``claims`` with the active ``alg`` key and ``typ`` header."""
        key = self.signer(alg)
        header = {"alg": key.alg, "kid": key.kid, "typ": typ}
        signing_input = (
            f"{b64url_encode(orjson.dumps(header))}.{b64url_encode(orjson.dumps(claims))}"
        )
        signature = JWSRegistry.algorithms[key.alg].sign(signing_input.encode("ascii"), key.key)
        return f"{signing_input}.{b64url_encode(signature)}"

    def public_jwks(self) -> dict[str, Any]:
        """Every published key (assertion and OAuth purposes), pending ones included."""
        return self._jwks

    def oauth_jwks(self) -> dict[str, Any]:
        """The published keys that sign access and ID tokens."""
        return {"keys": list(self._oauth_public)}

    def key_index(self) -> KeyIndex:
        return self._index

    @property
    def loaded_at(self) -> float:
        return self._loaded_at


class OwnKeySource:
    """A :class:`~bastion.tokens.KeySource` over :class:`SigningKeys` for the gateway's
    verifier of bastion's own tokens: an unknown ``kid`` triggers at most one reload per
    :data:`UNKNOWN_KID_RELOAD_SECONDS`."""

    def __init__(self, keys: SigningKeys) -> None:
        self._keys = keys

    async def key_index(self, kid: str | None) -> KeyIndex:
        index = self._keys.key_index()
        recent = time.monotonic() - self._keys.loaded_at <= UNKNOWN_KID_RELOAD_SECONDS
        if kid is not None and not index.has_kid(kid) and not recent:
            await self._keys.reload()
            index = self._keys.key_index()
        return index
