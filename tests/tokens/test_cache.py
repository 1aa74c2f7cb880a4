"""VerifiedTokenCache and InMemoryRevocations."""

from __future__ import annotations

from bastion.model import CredentialType, Principal
from bastion.tokens import InMemoryRevocations, VerifiedTokenCache
from bastion.tokens.cache import token_key
from tests.tokens._helpers import NOW, FakeClock


def principal(jti: str | None = "j1", exp: float = NOW + 100) -> Principal:
    claims = {"jti": jti} if jti else {}
    return Principal("u", CredentialType.JWT, expires_at=exp, claims=claims)


def test_hit_returns_same_principal() -> None:
    cache = VerifiedTokenCache(clock=FakeClock())
    p = principal()
    cache.put(token_key("t"), "main", p, 10)
    entry = cache.get(token_key("t"))
    assert entry is not None
    assert entry.principal is p
    assert entry.issuer_name == "main"
    assert cache.get(token_key("other")) is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_key_is_a_hash_not_the_token() -> None:
    key = token_key("secret.token.value")
    assert len(key) == 32
    assert b"secret" not in key


def test_entry_expires_at_exp() -> None:
    clock = FakeClock()
    cache = VerifiedTokenCache(clock=clock)
    cache.put(token_key("t"), "main", principal(exp=NOW + 100), 10)
    clock.advance(99.9)
    assert cache.get(token_key("t")) is not None
    clock.advance(0.1)
    assert cache.get(token_key("t")) is None
    assert len(cache) == 0  # dropped, not merely hidden


def test_expired_or_exp_less_principals_are_not_cached() -> None:
    cache = VerifiedTokenCache(clock=FakeClock())
    cache.put(token_key("a"), "main", principal(exp=NOW - 1), 10)
    cache.put(token_key("b"), "main", Principal("u", CredentialType.JWT), 10)
    assert len(cache) == 0


def test_revoked_jti_rejected_even_when_cached() -> None:
    clock = FakeClock()
    revocations = InMemoryRevocations(clock=clock)
    cache = VerifiedTokenCache(clock=clock, revoked=revocations)
    cache.put(token_key("t"), "main", principal("j1"), 10)
    assert cache.get(token_key("t")) is not None
    revocations.revoke_jti("j1", until=NOW + 100)
    assert cache.get(token_key("t")) is None


def test_bounded_entries_lru() -> None:
    cache = VerifiedTokenCache(max_entries=3, clock=FakeClock())
    for name in "abc":
        cache.put(token_key(name), "main", principal(), 10)
    assert cache.get(token_key("a")) is not None  # a is now most recent
    cache.put(token_key("d"), "main", principal(), 10)
    assert len(cache) == 3
    assert cache.get(token_key("b")) is None  # least recently used went first
    assert cache.get(token_key("a")) is not None
    for i in range(10_000):
        cache.put(token_key(str(i)), "main", principal(), 10)
    assert len(cache) == 3


def test_bounded_bytes() -> None:
    cache = VerifiedTokenCache(max_entries=1000, max_bytes=100, clock=FakeClock())
    for i in range(10):
        cache.put(token_key(str(i)), "main", principal(), 30)
    assert len(cache) == 3
    cache.put(token_key("huge"), "main", principal(), 101)
    assert cache.get(token_key("huge")) is None
    cache.clear()
    assert len(cache) == 0


def test_revocations_expire_and_purge() -> None:
    clock = FakeClock()
    r = InMemoryRevocations(clock=clock, max_entries=2)
    r.revoke_jti("a", NOW + 10)
    r.revoke_jti("a", NOW + 5)  # never shortened
    assert r.is_revoked("a")
    assert not r.is_revoked(None)
    assert r(principal("a"))
    assert not r(principal(None))
    clock.advance(10)
    assert not r.is_revoked("a")
    r.revoke_jti("b", NOW + 100)
    r.revoke_jti("c", NOW + 100)  # full: purges "a"
    assert len(r) == 2
