"""API keys: verification with a hot in-memory cache, rotation and revocation.

The key format is in :mod:`bastion.credentials._keyformat`. Only HMAC-SHA256 of the whole
key under ``Keyring.api_key_hmac`` is stored (a keyed fast hash: the key has 256 bits of
entropy, so a password hash would only cost throughput).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bastion.config import ApiKeyConfig, AuthMethod
from bastion.credentials import Revalidator
from bastion.credentials._keyformat import KeyFormat
from bastion.credentials._query import credential_in_query
from bastion.errors import BastionError, CredentialRefused, InvalidToken
from bastion.keyring import Keyring
from bastion.model import Clock, CredentialType, Principal, RequestView, system_clock
from bastion.store.apikeys import ApiKeyRecord, ApiKeyStore
from bastion.store.cache import TTLCache

log = logging.getLogger(__name__)

NEGATIVE_TTL = 5.0
FLUSH_INTERVAL = 30.0


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: ``key`` is shown once and never stored."""

    key: str = field(repr=False)
    record: ApiKeyRecord


class Lifetime(enum.Enum):
    SAME = "same"  # rotate: the new key lives as long as the old one was meant to


@dataclass(frozen=True, slots=True)
class _Entry:
    record: ApiKeyRecord
    principal: Principal
    expires: float | None
    revoked: bool


def _entry(record: ApiKeyRecord) -> _Entry:
    expires = None if record.expires_at is None else record.expires_at.timestamp()
    principal = Principal(
        subject=record.subject,
        credential=CredentialType.API_KEY,
        scopes=frozenset(record.scopes),
        roles=frozenset(record.roles),
        key_id=record.key_id,
        expires_at=expires,
    )
    return _Entry(record, principal, expires, record.revoked_at is not None)


class ApiKeys:
    """Issue, verify, rotate and revoke keys; the one owner of the key cache.

    A verified key costs one HMAC and a dict lookup: records are cached by ``key_id`` for
    ``api_keys.cache_seconds`` (bounded LRU); unknown ids are remembered for a few seconds
    (bounded) so random keys do not reach the database each time. Revoke and rotate through
    this object drop the entry at once; other processes see them within ``cache_seconds``.
    ``last_used_at`` is kept in memory and written in one batch every ``flush_interval``
    seconds and on :meth:`aclose`.

    Args:
        store: the :class:`ApiKeyStore`.
        hmac_key: ``Keyring.api_key_hmac`` (see :meth:`from_keyring`).
        config: ``Config.api_keys``.
        clock: seconds since the epoch.
        cache_size: most records (and, separately, unknown ids) kept in memory.
    """

    def __init__(
        self,
        store: ApiKeyStore,
        hmac_key: bytes,
        config: ApiKeyConfig | None = None,
        *,
        clock: Clock = system_clock,
        cache_size: int = 10_000,
        negative_ttl: float = NEGATIVE_TTL,
        flush_interval: float = FLUSH_INTERVAL,
    ) -> None:
        config = config or ApiKeyConfig()
        self.store = store
        self.format = KeyFormat(config.prefix)
        self._mac = hmac.new(hmac_key, digestmod=hashlib.sha256)
        self._clock = clock
        ttl = float(config.cache_seconds)
        self._cache: TTLCache[str, _Entry] = TTLCache(cache_size, ttl, clock=clock)
        self._unknown: TTLCache[str, bool] = TTLCache(
            cache_size, min(negative_ttl, ttl), clock=clock
        )
        self._generation = 0
        self._inflight: dict[str, asyncio.Future[ApiKeyRecord | None]] = {}
        self._flush_interval = flush_interval
        self._next_flush = clock() + flush_interval
        self._used: dict[str, float] = {}
        self._flushing: asyncio.Task[None] | None = None

    @classmethod
    def from_keyring(
        cls,
        store: ApiKeyStore,
        keyring: Keyring,
        config: ApiKeyConfig,
        *,
        clock: Clock = system_clock,
        cache_size: int = 10_000,
    ) -> ApiKeys:
        """The usual construction: the HMAC key derived from the deployment's keyring."""
        return cls(store, keyring.api_key_hmac, config, clock=clock, cache_size=cache_size)

    def hash(self, token: str) -> str:
        mac = self._mac.copy()
        mac.update(token.encode())
        return mac.hexdigest()

    # -- administration -------------------------------------------------------------

    async def issue(
        self,
        *,
        name: str,
        subject: str,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        expires_at: datetime | None = None,
    ) -> IssuedKey:
        key = self.format.generate()
        record = await self.store.create(
            key_id=self.format.parse(key).key_id,
            key_hash=self.hash(key),
            name=name,
            subject=subject,
            scopes=scopes,
            roles=roles,
            expires_at=expires_at,
        )
        self._unknown.pop(record.key_id)
        return IssuedKey(key, record)

    async def rotate(
        self,
        key_id: str,
        *,
        overlap: timedelta,
        expires_at: datetime | Lifetime | None = Lifetime.SAME,
    ) -> tuple[ApiKeyRecord, IssuedKey]:
        """Replace a key; the old one works until ``min(its expiry, now + overlap)``.

        Returns:
            the old key's record as updated, and the new key.
        """
        if isinstance(expires_at, Lifetime):
            expires_at = await self._same_lifetime(key_id)
        key = self.format.generate()
        try:
            old_record, new_record = await self.store.rotate(
                key_id,
                new_key_id=self.format.parse(key).key_id,
                new_key_hash=self.hash(key),
                overlap=overlap,
                new_expires_at=expires_at,
            )
        finally:
            self.invalidate(key_id)
        self._unknown.pop(new_record.key_id)
        return old_record, IssuedKey(key, new_record)

    async def _same_lifetime(self, key_id: str) -> datetime | None:
        old = await self.store.get_by_key_id(key_id)
        if old is None or old.expires_at is None:
            return None
        return datetime.fromtimestamp(self._clock(), UTC) + (old.expires_at - old.created_at)

    async def revoke(self, key_id: str) -> ApiKeyRecord:
        try:
            return await self.store.revoke(key_id)
        finally:
            self.invalidate(key_id)

    def invalidate(self, key_id: str) -> None:
        """Forget a cached record (call it when another instance reports a change)."""
        self._generation += 1
        self._cache.pop(key_id)
        self._unknown.pop(key_id)

    # -- verification (the hot path) ---------------------------------------------------

    async def verify(self, token: str) -> Principal:
        """The principal for a valid key. Raises InvalidToken with a private reason."""
        key_id = self.format.key_id_of(token)
        if key_id is None:
            raise InvalidToken("api_key_malformed")
        entry = self._cache.get(key_id)
        if entry is None:
            # The checksum spares the database a typo'd or forged key; a cached record
            # is checked by its HMAC alone.
            self.format.parse(token)
            entry = await self._load(key_id)
        if entry is None:
            raise InvalidToken("api_key_unknown")
        if not hmac.compare_digest(self.hash(token), entry.record.key_hash):
            raise InvalidToken("api_key_bad_secret")
        if entry.revoked:
            raise InvalidToken("api_key_revoked")
        now = self._clock()
        if entry.expires is not None and now >= entry.expires:
            raise InvalidToken("api_key_expired")
        self._mark_used(key_id, now)
        return entry.principal

    def verify_now(self, token: str) -> Principal | None:
        """:meth:`verify` for a key whose record is cached and which passes every check;
        None for anything else (``verify`` then reads the record or gives the reason)."""
        key_id = self.format.key_id_of(token)
        if key_id is None:
            return None
        entry = self._cache.get(key_id)
        if entry is None or entry.revoked:
            return None
        if not hmac.compare_digest(self.hash(token), entry.record.key_hash):
            return None
        now = self._clock()
        if entry.expires is not None and now >= entry.expires:
            return None
        self._mark_used(key_id, now)
        return entry.principal

    def revalidator(self, token: str, principal: Principal) -> Revalidator | None:
        """After :meth:`verify_now` accepted ``token`` as ``principal``: True while the
        record it was checked against is still the cached one (not expired from the
        cache, invalidated, revoked or reloaded) and the key has not expired; each True
        counts as a use, as :meth:`verify_now` does."""
        key_id = self.format.key_id_of(token)
        entry = None if key_id is None else self._cache.get(key_id)
        if key_id is None or entry is None or entry.principal is not principal:
            return None
        cache, clock, expires = self._cache, self._clock, entry.expires

        def valid() -> bool:
            if cache.get(key_id) is not entry:
                return False
            now = clock()
            if expires is not None and now >= expires:
                return False
            self._mark_used(key_id, now)
            return True

        return valid

    def _mark_used(self, key_id: str, now: float) -> None:
        self._used[key_id] = now
        if now >= self._next_flush and self._flushing is None:
            self._flushing = asyncio.create_task(self._flush_in_background())

    async def _load(self, key_id: str) -> _Entry | None:
        if self._unknown.get(key_id):
            return None
        generation = self._generation
        future = self._inflight.get(key_id)
        if future is None:
            # One database read per key id, however many requests wait for it.
            future = asyncio.ensure_future(self.store.get_by_key_id(key_id))
            self._inflight[key_id] = future
            future.add_done_callback(lambda f: self._lookup_done(key_id, f))
        record = await asyncio.shield(future)
        if record is None:
            self._unknown.set(key_id, True)
            return None
        entry = _entry(record)
        if generation == self._generation:  # not invalidated while we were reading
            self._cache.set(key_id, entry)
        return entry

    def _lookup_done(self, key_id: str, future: asyncio.Future[ApiKeyRecord | None]) -> None:
        self._inflight.pop(key_id, None)
        if not future.cancelled():
            future.exception()  # mark retrieved: every waiter may have gone away

    # -- last used -------------------------------------------------------------------

    async def flush(self) -> None:
        """Write the buffered ``last_used_at`` times in one statement."""
        used, self._used = self._used, {}
        self._next_flush = self._clock() + self._flush_interval
        if not used:
            return
        try:
            await self.store.touch_last_used(
                {k: datetime.fromtimestamp(t, UTC) for k, t in used.items()}
            )
        except BastionError:
            for key_id, at in used.items():  # keep them for the next attempt
                self._used[key_id] = max(at, self._used.get(key_id, at))
            raise

    async def _flush_in_background(self) -> None:
        try:
            await self.flush()
        except BastionError as exc:
            log.warning("api key last-used flush failed: %s", exc.reason)
        finally:
            self._flushing = None

    async def aclose(self) -> None:
        """Flush what is buffered; call on shutdown."""
        if self._flushing is not None:
            await self._flushing
        await self.flush()


class ApiKeyAuthenticator:
    """The ``api_key`` auth method.

    Accepts the key in ``api_keys.header`` (``X-API-Key``), ``Authorization: Bearer <key>``
    (when it has the key prefix, so JWTs are left to the bearer method) or
    ``Authorization: ApiKey <key>``. A key in the query string is refused: URLs end up
    in access logs, proxies and browser history.

    Args:
        keys: the shared :class:`ApiKeys`.
        config: ``Config.api_keys``.
    """

    method = AuthMethod.API_KEY

    def __init__(self, keys: ApiKeys, config: ApiKeyConfig) -> None:
        self.keys = keys
        self._header = config.header.lower()
        self._header_name = config.header
        self._prefix = config.prefix
        self._challenge = f'ApiKey header="{config.header}"'
        self.credential_headers: tuple[str, ...] = (self._header, "authorization")

    def _query_key(self, query: str) -> str | None:
        """The name of a query parameter that carries (or is named like) an API key."""
        return credential_in_query(query, self._prefix, generic=True)

    def _from_authorization(self, request: RequestView) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        scheme = scheme.lower()
        token = token.strip(" ")
        if scheme == "apikey" or (scheme == "bearer" and token.startswith(self._prefix)):
            return token
        return None

    def _headers_key(self, request: RequestView) -> str | None:
        header = request.headers.get(self._header)
        auth = self._from_authorization(request)
        if header is not None and auth is not None and header.strip() != auth:
            raise InvalidToken("api_key_ambiguous")
        return header.strip() if header is not None else auth

    def present(self, request: RequestView) -> bool:
        return (
            self._header in request.headers
            or self._from_authorization(request) is not None
            or self._query_key(request.query) is not None
        )

    def account(self, request: RequestView) -> str | None:
        try:
            key = self._headers_key(request)
        except InvalidToken:
            return None
        return None if key is None else self.keys.format.key_id_of(key)

    def challenge(self, error: str | None = None) -> str:
        if error is None:
            return self._challenge
        return f'{self._challenge}, error="{error}"'

    def authenticate_now(self, request: RequestView) -> Principal | None:
        if self._query_key(request.query) is not None:
            return None  # authenticate() refuses it
        try:
            key = self._headers_key(request)
        except InvalidToken:
            return None
        return None if key is None else self.keys.verify_now(key)

    def revalidator(self, request: RequestView, principal: Principal) -> Revalidator | None:
        try:
            key = self._headers_key(request)
        except InvalidToken:
            return None
        return None if key is None else self.keys.revalidator(key, principal)

    async def authenticate(self, request: RequestView) -> Principal:
        if self._query_key(request.query) is not None:
            raise CredentialRefused(
                "api_key_in_query",
                detail="API keys in URLs leak into logs and are refused; "
                f"send the key in the {self._header_name} header.",
            )
        key = self._headers_key(request)
        if key is None:
            raise InvalidToken("api_key_missing")
        return await self.keys.verify(key)
