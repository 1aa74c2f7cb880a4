"""Rate limiting per IP, principal and route, and failed-credential throttling.

Counting is the `limits` library's; this module names the keys, caches parsed rates,
turns window statistics into :class:`LimitResult` and fails closed: a storage error
becomes :class:`~bastion.errors.Unavailable`, never an allow.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import math
import re
import time
from collections.abc import Iterable

import limits
from limits import RateLimitItem

from bastion.config import RateLimitConfig
from bastion.errors import Unavailable
from bastion.model import Clock, system_clock
from bastion.ratelimit._backends import Backend, MemoryBackend, RedisBackend
from bastion.ratelimit._result import LimitResult

FAILED_ACCOUNT_POLICY = "auth-fail:account"
FAILED_IP_POLICY = "auth-fail:ip"


def redis_key_prefix(namespace: str) -> str:
    """The prefix of a deployment's counters in Redis (``redis_namespace``)."""
    return f"{namespace}:rl"


DEFAULT_REDIS_PREFIX = redis_key_prefix("bastion")
_EPSILON = 1e-3

# Keys used verbatim: short and without the separator. Anything else (long subjects,
# odd characters) is hashed, so no key can mimic another's and none is unbounded.
# A hashed key starts with '#', which a verbatim key never contains.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9:._@\[\]-]{1,64}")


MAX_RECENT_FAILURES = 100_000
_new = tuple.__new__

# Checks ready for RateLimiter.hit_all: (policy, storage key, rate, window seconds,
# units per window).
Prepared = tuple[tuple[str, str, RateLimitItem, int, int], ...]


def _digest(value: str) -> str:
    return "#" + hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def ip_bucket(ip: str, ipv6_prefix: int) -> str:
    """What a per-address limit counts ``ip`` under: an IPv4 address itself, an IPv6
    address by its ``/ipv6_prefix`` network (an IPv4-mapped one as its IPv4 address)."""
    return ip if ":" not in ip else _ipv6_bucket(ip, ipv6_prefix)


@functools.lru_cache(maxsize=4096)
def _ipv6_bucket(ip: str, prefix: int) -> str:
    try:
        address = ipaddress.IPv6Address(ip)
    except ValueError:
        return ip
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    network = ipaddress.IPv6Network((address, prefix), strict=False)
    return f"{network.network_address}/{prefix}"


def _storage_key(value: str) -> str:
    return value if _PLAIN_KEY.fullmatch(value) else _digest(value)


class RateLimiter:
    """Consumes and checks rate limits on memory or Redis storage.

    Build it with :meth:`from_config`. ``clock`` must agree with the clock `limits`
    uses (``time.time``); tests replace both together.
    """

    def __init__(self, backend: Backend, cfg: RateLimitConfig, *, clock: Clock = system_clock):
        self._backend = backend
        self._memory = backend if isinstance(backend, MemoryBackend) else None
        self._cfg = cfg
        self._clock = clock
        self._rates: dict[str, tuple[RateLimitItem, str, int]] = {}
        # (policy, rate, key) -> (storage key, item, window): the same few keys repeat
        # on every request; bounded, cleared when full.
        self._keys: dict[tuple[str, str, str], tuple[str, RateLimitItem, int]] = {}
        # With process-local counters, which failure keys have counts that may still be
        # live (monotonic deadline): a request from an address and account with no recent
        # failure skips both peeks, the common case. Redis is shared, so it always peeks.
        self._recent_failures: dict[str, float] = {}
        self._next_prune = 0.0

    @classmethod
    def from_config(
        cls,
        cfg: RateLimitConfig,
        redis_url: str | None,
        *,
        key_prefix: str = DEFAULT_REDIS_PREFIX,
        redis_timeout: float = 0.5,
        clock: Clock = system_clock,
    ) -> RateLimiter:
        """A limiter on Redis when ``redis_url`` is given, else in process memory.

        Args:
            cfg: the ``rate_limits`` section of the config.
            redis_url: ``redis://``, ``rediss://`` or ``unix://``; None for memory.
            key_prefix: Redis key namespace; instances that must act as one share it.
            redis_timeout: seconds before a Redis call fails (and the request gets 503).
            clock: seconds since the epoch.
        """
        backend: Backend
        if redis_url is None:
            backend = MemoryBackend(cfg.strategy, clock)
        else:
            url = "redis+" + redis_url if redis_url.startswith("unix://") else redis_url
            backend = RedisBackend(
                url, cfg.strategy, clock, key_prefix=key_prefix, timeout=redis_timeout
            )
        return cls(backend, cfg, clock=clock)

    @property
    def backend(self) -> Backend:
        return self._backend

    def _rate(self, rate: str) -> tuple[RateLimitItem, str, int]:
        cached = self._rates.get(rate)
        if cached is None:
            item = limits.parse(rate)
            suffix = f"{item.amount}/{item.multiples}/{item.GRANULARITY.name}"
            cached = (item, suffix, item.get_expiry())
            if len(self._rates) < 1024:  # rates come from config; never grow without bound
                self._rates[rate] = cached
        return cached

    async def hit(self, policy: str, rate: str, key: str) -> LimitResult:
        """Consume one unit of ``rate`` for ``key`` under ``policy``.

        Args:
            policy: ``"ip"``, ``"principal"``, ``"route:<name>"``…; also the header name.
            rate: a rate string from the config, e.g. ``"600/minute"``.
            key: who is counted: an IP address, a principal's subject…

        Raises:
            Unavailable: the storage could not be reached (fail closed).
        """
        skey, item, window = self._key(policy, rate, key)
        try:
            allowed, remaining, reset_in = await self._backend.hit(item, skey)
        except Exception as exc:  # fail closed on any storage failure
            raise Unavailable(f"rate limit storage failed: {type(exc).__name__}") from exc
        return self._result(allowed, policy, item.amount, remaining, reset_in, window)

    @property
    def in_process(self) -> bool:
        """Whether the counters live in this process: the ``*_now`` methods then answer
        without I/O (and must not be called otherwise)."""
        return self._memory is not None

    def prepare(self, checks: Iterable[tuple[str, str | None, str]]) -> Prepared:
        """(policy, rate, key) checks in the form :meth:`hit_all` consumes; a ``None``
        rate (not configured) is left out. The result holds no state: callers may keep
        it for keys that recur (a principal on a route)."""
        keys = self._keys
        out = []
        for policy, rate, key in checks:
            if rate is None:
                continue
            spec = keys.get((policy, rate, key))
            if spec is None:
                spec = self._key(policy, rate, key)
            skey, item, window = spec
            out.append((policy, skey, item, window, item.amount))
        return tuple(out)

    def hit_all_now(self, checks: Prepared) -> LimitResult | None:
        """:meth:`hit_all` on in-process counters, without a coroutine."""
        backend = self._memory
        if backend is None:
            raise RuntimeError("hit_all_now needs in-process counters (see in_process)")
        now = backend.now()
        if backend.sliding:  # the default strategy: one loop, no call per check
            found = backend.sliding_hit_all(checks, now)
            if found is None:
                return None
            allowed, policy, amount, window, remaining, reset_in = found
            if allowed:  # tuple.__new__: a named tuple's own __new__ is a Python call
                reset_after = max(0, math.ceil(reset_in))
                return _new(LimitResult, (True, policy, amount, remaining, reset_after, window))
            return self._result(False, policy, amount, remaining, reset_in, window)
        tightest = None
        for policy, skey, _, window, amount in checks:
            allowed, remaining, reset_in = backend.hit_counts(amount, window, skey, now)
            if not allowed:
                return self._result(False, policy, amount, remaining, reset_in, window)
            if tightest is None or remaining < tightest[3]:
                tightest = (policy, amount, window, remaining, reset_in)
        if tightest is None:
            return None
        policy, amount, window, remaining, reset_in = tightest
        return LimitResult(True, policy, amount, remaining, max(0, math.ceil(reset_in)), window)

    async def hit_all(self, checks: Prepared) -> LimitResult | None:
        """Consume one unit of each prepared check, in order. Returns the first denial
        (later checks are not consumed), else the result with the fewest units left;
        None when there was nothing to check.

        Raises:
            Unavailable: the storage could not be reached (fail closed).
        """
        if self._memory is not None:
            return self.hit_all_now(checks)
        tightest = None
        for policy, skey, item, window, amount in checks:
            try:
                allowed, remaining, reset_in = await self._backend.hit(item, skey)
            except Exception as exc:  # fail closed on any storage failure
                raise Unavailable(f"rate limit storage failed: {type(exc).__name__}") from exc
            result = self._result(allowed, policy, amount, remaining, reset_in, window)
            if not allowed:
                return result
            if tightest is None or result.remaining < tightest.remaining:
                tightest = result
        return tightest

    def _key(self, policy: str, rate: str, key: str) -> tuple[str, RateLimitItem, int]:
        item, suffix, window = self._rate(rate)
        spec = (f"{policy}/{_storage_key(key)}/{suffix}", item, window)
        if len(self._keys) >= 8192:
            self._keys.clear()  # cheap bound: many distinct clients just recompute
        self._keys[(policy, rate, key)] = spec
        return spec

    async def _peek(self, policy: str, rate: str, key: str) -> LimitResult:
        item, suffix, window = self._rate(rate)
        skey = f"{policy}/{key}/{suffix}"
        try:
            remaining, reset_in = await self._backend.peek(item, skey)
        except Exception as exc:  # fail closed on any storage failure
            raise Unavailable(f"rate limit storage failed: {type(exc).__name__}") from exc
        return self._result(remaining > 0, policy, item.amount, remaining, reset_in, window)

    @staticmethod
    def _result(
        allowed: bool, policy: str, limit: int, remaining: int, reset_in: float, window: int
    ) -> LimitResult:
        if allowed:
            reset_after = max(0, math.ceil(reset_in))
        else:
            # Strictly after the moment a unit frees up: a client retrying at exactly
            # ``t`` seconds must not be refused again (sliding windows free a unit just
            # *after* the computed instant, which float error may put a hair early).
            remaining, reset_after = 0, max(1, math.floor(reset_in + _EPSILON) + 1)
        return LimitResult(allowed, policy, limit, remaining, reset_after, window)

    def _failure_keys(self, account: str | None, ip: str) -> list[tuple[str, str, str]]:
        bucket = ip_bucket(ip, self._cfg.ipv6_prefix)
        keys = [(FAILED_IP_POLICY, self._cfg.failed_auth_per_ip, _storage_key(bucket))]
        if account is not None:
            # Accounts are always hashed: a fixed-size key that no other account's can
            # equal, and no user name stored in Redis.
            rate = self._cfg.failed_auth_per_account
            keys.append((FAILED_ACCOUNT_POLICY, rate, _digest(account)))
        return keys

    async def failures_blocked(self, *, account: str | None, ip: str) -> LimitResult | None:
        """The exhausted failure budget if ``account`` or ``ip`` may not try again, else None.

        Call it before verifying a credential; it consumes nothing.

        Raises:
            Unavailable: the storage could not be reached (fail closed).
        """
        if self._memory is not None:
            return self.failures_blocked_now(account=account, ip=ip)
        for policy, rate, key in self._failure_keys(account, ip):
            result = await self._peek(policy, rate, key)
            if not result.allowed:
                return result
        return None

    @property
    def failures_recent(self) -> bool:
        """Whether :meth:`failures_blocked_now` may find a budget exhausted: False while
        this process has counted no failed credential lately, the common case (it then
        answers None whoever asks). Always True on Redis, whose counters are shared."""
        return self._memory is None or bool(self._recent_failures)

    def failures_blocked_now(self, *, account: str | None, ip: str) -> LimitResult | None:
        """:meth:`failures_blocked` on in-process counters, without a coroutine."""
        backend = self._memory
        if backend is None:
            raise RuntimeError("failures_blocked_now needs in-process counters")
        if not self._recent_failures:
            return None  # no failure counted in this process lately: nothing to peek
        now = time.monotonic()
        for policy, rate, key in self._failure_keys(account, ip):
            deadline = self._recent_failures.get(f"{policy}/{key}")
            if deadline is None or deadline < now:
                continue
            item, suffix, window = self._rate(rate)
            remaining, reset_in = backend.peek_now(item, f"{policy}/{key}/{suffix}")
            result = self._result(remaining > 0, policy, item.amount, remaining, reset_in, window)
            if not result.allowed:
                return result
        return None

    async def record_failure(self, *, account: str | None, ip: str) -> None:
        """Count one failed credential against ``ip`` and, if known, ``account``.

        Raises:
            Unavailable: the storage could not be reached.
        """
        now = time.monotonic()
        for policy, rate, key in self._failure_keys(account, ip):
            item, suffix, window = self._rate(rate)
            try:
                await self._backend.hit(item, f"{policy}/{key}/{suffix}")
            except Exception as exc:  # surfaced as 503, never swallowed
                raise Unavailable(f"rate limit storage failed: {type(exc).__name__}") from exc
            if self._backend.local:
                # A sliding window may count a failure for up to two windows.
                self._recent_failures[f"{policy}/{key}"] = now + 2 * window + 1
        if len(self._recent_failures) > MAX_RECENT_FAILURES and now >= self._next_prune:
            self._next_prune = now + 1.0  # at most once a second, however hard the flood
            self._recent_failures = {k: d for k, d in self._recent_failures.items() if d >= now}

    async def remember_owner(self, account: str, ip: str, seconds: int) -> None:
        """Share, for ``seconds``, that ``account`` authenticated from ``ip``: on Redis every
        instance then spares that address from the account's failed-credential block, as
        the instance that saw it does. Nothing on in-process counters, which are this
        process's own (the gateway remembers the pair itself).

        Raises:
            Unavailable: Redis could not be reached.
        """
        if isinstance(self._backend, RedisBackend):
            try:
                await self._backend.remember(self._owner_key(account, ip), seconds)
            except Exception as exc:
                raise Unavailable(f"rate limit storage failed: {type(exc).__name__}") from exc

    async def owner_known(self, account: str, ip: str) -> bool:
        """Whether another instance shared that ``account`` authenticated from ``ip``
        (False on in-process counters, and when Redis cannot say: no exemption)."""
        if not isinstance(self._backend, RedisBackend):
            return False
        try:
            return await self._backend.known(self._owner_key(account, ip))
        except Exception:  # noqa: BLE001 - no answer: the block holds (fail closed)
            return False

    @staticmethod
    def _owner_key(account: str, ip: str) -> str:
        return "owner/" + _digest(f"{account}\n{ip}")

    async def aclose(self) -> None:
        """Release the storage (Redis connections, the memory sweeper)."""
        await self._backend.aclose()
