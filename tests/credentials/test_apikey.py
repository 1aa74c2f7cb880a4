from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bastion.config import ApiKeyConfig
from bastion.credentials._keyformat import KeyFormat, _b62, _checksum
from bastion.credentials.apikey import ApiKeyAuthenticator, ApiKeys
from bastion.errors import CredentialRefused, InvalidToken, Unavailable
from bastion.keyring import Keyring
from bastion.model import CredentialType, RequestView
from bastion.store import ApiKeyRecord, ApiKeyStore, async_engine, migrate
from tests.store._db import FakeClock

CONFIG = ApiKeyConfig(cache_seconds=30)
FMT = KeyFormat("bst_")


class CountingStore(ApiKeyStore):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.gets: list[str] = []
        self.touches: list[dict[str, datetime]] = []
        self.fail_touch = False

    async def get_by_key_id(self, key_id: str) -> ApiKeyRecord | None:
        self.gets.append(key_id)
        return await super().get_by_key_id(key_id)

    async def touch_last_used(self, used: Mapping[str, datetime]) -> None:
        if self.fail_touch:
            raise Unavailable("db down")
        self.touches.append(dict(used))
        await super().touch_last_used(used)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[CountingStore]:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    await migrate(url)
    engine = async_engine(url)
    yield CountingStore(engine, clock=clock)
    await engine.dispose()


@pytest.fixture
def keys(store: CountingStore, clock: FakeClock) -> ApiKeys:
    return ApiKeys.from_keyring(store, Keyring(master=b"k" * 32), CONFIG, clock=clock)


@pytest.fixture
def auth(keys: ApiKeys) -> ApiKeyAuthenticator:
    return ApiKeyAuthenticator(keys, CONFIG)


def at(clock: FakeClock, plus: float = 0) -> datetime:
    return datetime.fromtimestamp(clock.now + plus, UTC)


def req(headers: dict[str, str] | None = None, query: str = "") -> RequestView:
    return RequestView(method="GET", path="/", query=query, headers=headers or {}, secure=True)


def with_checksum(body: str) -> str:
    return body + _checksum(body)


# -- format -----------------------------------------------------------------------------


def test_generated_keys_have_the_documented_shape() -> None:
    key = FMT.generate()
    assert len(key) == 66 == FMT.length
    assert key.startswith("bst_")
    assert key[16] == "_"
    parsed = FMT.parse(key)
    assert parsed.key_id == key[4:16]
    assert set(parsed.key_id) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert key not in repr(parsed)
    assert FMT.generate() != key


def test_checksum_is_crc32_of_the_body_offline() -> None:
    # What a leaked-key scanner does: no database, no keyring.
    key = FMT.generate()
    body, check = key[:-6], key[-6:]
    assert check == _b62(zlib.crc32(body.encode()), 6)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "bst_",
        "bst_short",
        "xyz_" + FMT.generate()[4:],  # wrong prefix
        FMT.generate()[:-1],  # one char short
        FMT.generate() + "a",  # one char long
        with_checksum("bst_AAAAAAAAAAAA_" + "a" * 43),  # upper-case key id
        with_checksum("bst_aaaaaaaaaaa1_" + "a" * 43),  # '1' is not base32
        with_checksum("bst_aaaaaaaaaaaa-" + "a" * 43),  # separator
        with_checksum("bst_aaaaaaaaaaaa_" + "a" * 42 + "-"),  # '-' not base62
        with_checksum("bst_aaaaaaaaaaaa_" + "a" * 42 + "é"),
        "bst_aaaaaaaaaaaa_" + "a" * 43 + "\x00" * 6,
    ],
)
async def test_malformed_keys(auth: ApiKeyAuthenticator, store: CountingStore, token: str) -> None:
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(req({"x-api-key": token}))
    assert info.value.reason == "api_key_malformed"
    assert store.gets == []


async def test_bad_checksum(auth: ApiKeyAuthenticator, store: CountingStore) -> None:
    key = FMT.generate()
    flipped = key[:20] + ("A" if key[20] != "A" else "B") + key[21:]
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(req({"x-api-key": flipped}))
    assert info.value.reason == "api_key_bad_checksum"
    assert store.gets == []


# -- verification -----------------------------------------------------------------------


async def test_valid_key_carries_subject_scopes_roles_expiry(
    keys: ApiKeys, auth: ApiKeyAuthenticator, clock: FakeClock
) -> None:
    issued = await keys.issue(
        name="ci",
        subject="svc-ci",
        scopes=["read", "write"],
        roles=["deployer"],
        expires_at=at(clock, 3600),
    )
    p = await auth.authenticate(req({"x-api-key": issued.key}))
    assert p.subject == "svc-ci"
    assert p.credential is CredentialType.API_KEY
    assert p.key_id == issued.record.key_id
    assert p.scopes == {"read", "write"}
    assert p.roles == {"deployer"}
    assert p.expires_at == clock.now + 3600
    assert issued.key not in repr(issued)


async def test_only_the_hmac_is_stored(keys: ApiKeys, store: CountingStore) -> None:
    issued = await keys.issue(name="n", subject="s")
    rec = await store.get_by_key_id(issued.record.key_id)
    assert rec is not None
    assert rec.key_hash == keys.hash(issued.key)
    assert len(rec.key_hash) == 64
    assert issued.key.split("_")[2] not in rec.key_hash
    other = ApiKeys.from_keyring(store, Keyring(master=b"z" * 32), CONFIG)
    assert other.hash(issued.key) != rec.key_hash  # keyed: useless without the master key


async def test_wrong_secret_with_a_real_key_id(keys: ApiKeys, auth: ApiKeyAuthenticator) -> None:
    issued = await keys.issue(name="n", subject="s")
    forged = with_checksum(f"bst_{issued.record.key_id}_" + "A" * 43)
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(req({"x-api-key": forged}))
    assert info.value.reason == "api_key_bad_secret"
    # ... also once the real key has put the record in the cache.
    await auth.authenticate(req({"x-api-key": issued.key}))
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(req({"x-api-key": forged}))
    assert info.value.reason == "api_key_bad_secret"


async def test_expired(keys: ApiKeys, auth: ApiKeyAuthenticator, clock: FakeClock) -> None:
    issued = await keys.issue(name="n", subject="s", expires_at=at(clock, 10))
    await auth.authenticate(req({"x-api-key": issued.key}))
    clock.advance(10)  # the cached entry still knows the expiry
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(req({"x-api-key": issued.key}))
    assert info.value.reason == "api_key_expired"


async def test_unknown_key_id_and_negative_cache(
    auth: ApiKeyAuthenticator, store: CountingStore, clock: FakeClock
) -> None:
    key = FMT.generate()
    for _ in range(3):
        with pytest.raises(InvalidToken) as info:
            await auth.authenticate(req({"x-api-key": key}))
        assert info.value.reason == "api_key_unknown"
    assert len(store.gets) == 1
    clock.advance(5)
    with pytest.raises(InvalidToken):
        await auth.authenticate(req({"x-api-key": key}))
    assert len(store.gets) == 2


async def test_negative_cache_is_bounded(store: CountingStore, clock: FakeClock) -> None:
    keys = ApiKeys(store, b"k" * 32, CONFIG, clock=clock, cache_size=5)
    for _ in range(20):
        with pytest.raises(InvalidToken):
            await keys.verify(FMT.generate())
    assert len(keys._unknown) == 5
    assert len(keys._cache) == 0


async def test_valid_key_is_cached_no_io(
    keys: ApiKeys, auth: ApiKeyAuthenticator, store: CountingStore, clock: FakeClock
) -> None:
    issued = await keys.issue(name="n", subject="s")
    for _ in range(50):
        await auth.authenticate(req({"x-api-key": issued.key}))
    assert store.gets == [issued.record.key_id]
    clock.advance(30)  # cache_seconds
    await auth.authenticate(req({"x-api-key": issued.key}))
    assert len(store.gets) == 2


async def test_forged_keys_for_a_cached_id_are_refused_without_io(
    keys: ApiKeys, auth: ApiKeyAuthenticator, store: CountingStore
) -> None:
    # Once a key id is cached its checksum is not recomputed: the HMAC decides.
    issued = await keys.issue(name="n", subject="s")
    await auth.authenticate(req({"x-api-key": issued.key}))
    bad_checksum = issued.key[:-1] + ("A" if issued.key[-1] != "A" else "B")
    other_secret = issued.key[:20] + ("A" if issued.key[20] != "A" else "B") + issued.key[21:]
    for forged in (bad_checksum, other_secret):
        with pytest.raises(InvalidToken) as info:
            await auth.authenticate(req({"x-api-key": forged}))
        assert info.value.reason == "api_key_bad_secret"
    assert store.gets == [issued.record.key_id]


async def test_concurrent_misses_share_one_read(keys: ApiKeys, store: CountingStore) -> None:
    issued = await keys.issue(name="n", subject="s")
    results = await asyncio.gather(*(keys.verify(issued.key) for _ in range(20)))
    assert {p.subject for p in results} == {"s"}
    assert store.gets == [issued.record.key_id]


async def test_cache_seconds_zero_always_reads(store: CountingStore, clock: FakeClock) -> None:
    keys = ApiKeys(store, b"k" * 32, ApiKeyConfig(cache_seconds=0), clock=clock)
    issued = await keys.issue(name="n", subject="s")
    await keys.verify(issued.key)
    await keys.verify(issued.key)
    assert len(store.gets) == 2


async def test_revoke_invalidates_the_cache_at_once(
    keys: ApiKeys, auth: ApiKeyAuthenticator
) -> None:
    issued = await keys.issue(name="n", subject="s")
    await auth.authenticate(req({"x-api-key": issued.key}))
    await keys.revoke(issued.record.key_id)
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(req({"x-api-key": issued.key}))
    assert info.value.reason == "api_key_revoked"


async def test_revoke_elsewhere_is_seen_within_cache_seconds(
    keys: ApiKeys, store: CountingStore, clock: FakeClock
) -> None:
    issued = await keys.issue(name="n", subject="s")
    await keys.verify(issued.key)
    await ApiKeys(store, b"k" * 32, CONFIG, clock=clock).revoke(issued.record.key_id)
    await keys.verify(issued.key)  # still cached here: the documented bound
    clock.advance(30)
    with pytest.raises(InvalidToken):
        await keys.verify(issued.key)


async def test_invalidation_during_a_read_is_not_undone(
    keys: ApiKeys, store: CountingStore
) -> None:
    issued = await keys.issue(name="n", subject="s")
    read = asyncio.ensure_future(keys.verify(issued.key))
    await asyncio.sleep(0)  # the read has started
    keys.invalidate(issued.record.key_id)
    await read
    assert keys._cache.get(issued.record.key_id) is None


async def test_rotation_overlap(keys: ApiKeys, auth: ApiKeyAuthenticator, clock: FakeClock) -> None:
    issued = await keys.issue(
        name="n", subject="s", scopes=["a"], roles=["r"], expires_at=at(clock, 30 * 86400)
    )
    await auth.authenticate(req({"x-api-key": issued.key}))  # cached before rotation
    old, new = await keys.rotate(issued.record.key_id, overlap=timedelta(hours=24))
    assert old.replaced_by == new.record.key_id
    assert new.record.expires_at == at(clock, 30 * 86400)  # same lifetime, from now
    for key in (issued.key, new.key):
        p = await auth.authenticate(req({"x-api-key": key}))
        assert (p.scopes, p.roles) == ({"a"}, {"r"})
    clock.advance(24 * 3600 - 1)
    await auth.authenticate(req({"x-api-key": issued.key}))
    clock.advance(1)
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(req({"x-api-key": issued.key}))
    assert info.value.reason == "api_key_expired"
    assert (await auth.authenticate(req({"x-api-key": new.key}))).key_id == new.record.key_id


async def test_rotate_with_explicit_expiry(keys: ApiKeys, clock: FakeClock) -> None:
    issued = await keys.issue(name="n", subject="s")
    _, new = await keys.rotate(issued.record.key_id, overlap=timedelta(0), expires_at=None)
    assert new.record.expires_at is None
    with pytest.raises(InvalidToken):
        await keys.verify(issued.key)


async def test_database_down_fails_closed(clock: FakeClock) -> None:
    engine = async_engine("postgresql://nobody@127.0.0.1:1/none")
    keys = ApiKeys(ApiKeyStore(engine), b"k" * 32, CONFIG, clock=clock)
    with pytest.raises(Unavailable):
        await keys.verify(FMT.generate())
    await engine.dispose()


# -- last used --------------------------------------------------------------------------


async def test_last_used_is_flushed_in_batches(
    keys: ApiKeys, store: CountingStore, clock: FakeClock
) -> None:
    a = await keys.issue(name="a", subject="s")
    b = await keys.issue(name="b", subject="s")
    for _ in range(10):
        await keys.verify(a.key)
        clock.advance(1)
        await keys.verify(b.key)
    assert store.touches == []  # no write per request
    clock.advance(20)
    await keys.verify(a.key)  # 30 s after the start: one background batch
    task = keys._flushing
    assert task is not None
    await task
    assert store.touches == [{a.record.key_id: at(clock), b.record.key_id: at(clock, -20)}]
    rec = await store.get_by_key_id(a.record.key_id)
    assert rec is not None
    assert rec.last_used_at == at(clock)


async def test_close_flushes_and_failed_flush_keeps_times(
    keys: ApiKeys, store: CountingStore, clock: FakeClock
) -> None:
    a = await keys.issue(name="a", subject="s")
    await keys.verify(a.key)
    store.fail_touch = True
    with pytest.raises(Unavailable):
        await keys.flush()
    store.fail_touch = False
    await keys.aclose()
    assert store.touches == [{a.record.key_id: at(clock)}]
    await keys.aclose()  # nothing left: no empty write
    assert len(store.touches) == 1


async def test_background_flush_failure_is_logged_not_raised(
    keys: ApiKeys, store: CountingStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    a = await keys.issue(name="a", subject="s")
    store.fail_touch = True
    clock.advance(31)
    await keys.verify(a.key)
    await keys._flushing  # type: ignore[misc]
    assert "flush failed" in caplog.text
    assert keys._used == {a.record.key_id: clock.now}


# -- where the key may come from --------------------------------------------------------


async def test_accepted_in_bearer_and_apikey_schemes(
    keys: ApiKeys, auth: ApiKeyAuthenticator
) -> None:
    issued = await keys.issue(name="n", subject="s")
    for header in (f"Bearer {issued.key}", f"ApiKey {issued.key}", f"bearer  {issued.key}"):
        r = req({"authorization": header})
        assert auth.present(r)
        assert auth.account(r) == issued.record.key_id
        assert (await auth.authenticate(r)).subject == "s"


async def test_same_key_twice_is_fine_different_keys_are_not(
    keys: ApiKeys, auth: ApiKeyAuthenticator
) -> None:
    issued = await keys.issue(name="n", subject="s")
    same = {"x-api-key": issued.key, "authorization": f"Bearer {issued.key}"}
    assert (await auth.authenticate(req(same))).subject == "s"
    other = {"x-api-key": issued.key, "authorization": f"ApiKey {FMT.generate()}"}
    assert auth.account(req(other)) is None
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(req(other))
    assert info.value.reason == "api_key_ambiguous"


def test_present(auth: ApiKeyAuthenticator) -> None:
    assert not auth.present(req())
    assert not auth.present(req({"authorization": "Bearer eyJhbGciOi.x.y"}))  # a JWT
    assert not auth.present(req({"authorization": "Basic YTpi"}))
    assert auth.present(req({"x-api-key": "anything"}))
    assert auth.present(req(query="api_key=x"))
    assert auth.account(req({"x-api-key": "junk"})) is None


def test_challenge(auth: ApiKeyAuthenticator) -> None:
    assert auth.challenge() == 'ApiKey header="X-API-Key"'
    assert auth.challenge("invalid_token") == 'ApiKey header="X-API-Key", error="invalid_token"'


async def test_custom_header(keys: ApiKeys) -> None:
    auth = ApiKeyAuthenticator(keys, ApiKeyConfig(header="X-Token"))
    issued = await keys.issue(name="n", subject="s")
    assert (await auth.authenticate(req({"x-token": issued.key}))).subject == "s"


async def test_missing_key(auth: ApiKeyAuthenticator) -> None:
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(req({"authorization": "Bearer not-ours"}))
    assert info.value.reason == "api_key_missing"


@pytest.mark.parametrize(
    "query",
    [
        "api_key=whatever",
        "apikey=x",
        "API_KEY=x",
        "key=",
        "token=abc",
        "page=2&q=bst_abcdef",
        "page=2&q=bst%5Fabc",
        "Page=2&TOKEN=1",
        "a=1&%6Bey=x",  # "key", percent-encoded
        "a=1&Api-Key=x",
    ],
)
async def test_key_in_query_string_is_refused(
    keys: ApiKeys, auth: ApiKeyAuthenticator, store: CountingStore, query: str
) -> None:
    issued = await keys.issue(name="n", subject="s")
    store.gets.clear()
    with pytest.raises(CredentialRefused) as info:
        # Refused even with a valid key in the header: the URL has already leaked one.
        await auth.authenticate(req({"x-api-key": issued.key}, query=query))
    assert info.value.reason == "api_key_in_query"
    assert "X-API-Key header" in (info.value.detail or "")
    assert "logs" in (info.value.detail or "")
    assert store.gets == []


async def test_unrelated_query_is_fine(keys: ApiKeys, auth: ApiKeyAuthenticator) -> None:
    issued = await keys.issue(name="n", subject="s")
    r = req({"x-api-key": issued.key}, query="page=2&sort=name&%zz=%%")
    assert (await auth.authenticate(r)).subject == "s"
