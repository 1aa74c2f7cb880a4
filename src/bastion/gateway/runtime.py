"""Everything one gateway process holds, built from a :class:`Config` and closed as one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bastion._tasks import stop_tasks, within
from bastion.audit import AuditLog, Metrics
from bastion.config import AuthMethod, Config
from bastion.credentials import Authenticator
from bastion.credentials._passwords import Passwords
from bastion.credentials.apikey import ApiKeyAuthenticator, ApiKeys
from bastion.credentials.basic import BasicAuthenticator
from bastion.credentials.bearer import BearerAuthenticator
from bastion.errors import AuthenticationError, ConfigError, RateLimited
from bastion.gateway._asgi import Trust
from bastion.gateway._owners import CredentialThrottle
from bastion.gateway.core import Gateway
from bastion.gateway.decision import Decision
from bastion.gateway.proxy import Proxy
from bastion.keyring import Keyring, load_keyring
from bastion.model import Clock, Principal, RequestView, system_clock
from bastion.ratelimit import RateLimiter, redis_key_prefix
from bastion.store import ApiKeyStore, UserStore, async_engine, check_schema
from bastion.store.context import ensure_schema
from bastion.store.engine import session_factory
from bastion.tokens import InMemoryRevocations
from bastion.tokens.keys import ASSERTION_PURPOSE, AssertionSigner, publish_jwks

if TYPE_CHECKING:
    from bastion.oauth import AuthorizationServer

log = logging.getLogger("bastion.runtime")
READINESS_TTL = 2.0
# /readyz answers within this; a check that has not answered by then counts as failed
# (and goes on in the background, one at a time, for the next probe to read).
READINESS_SECONDS = 1.5
CLOSE_SECONDS = 5.0  # the longest shutdown waits for any one part to close


class AuditObserver:
    """Writes the audit line and updates the metrics for each decision."""

    def __init__(self, audit: AuditLog, metrics: Metrics) -> None:
        self.audit = audit
        self.metrics = metrics

    @property
    def blocked(self) -> bool:
        return self.audit.blocked

    def decided(
        self, request: RequestView, decision: Decision, front_door: str, seconds: float
    ) -> None:
        principal = decision.principal
        route = decision.route.name if decision.route is not None else None
        credential = principal.credential.value if principal is not None else None
        outcome = "allow" if decision.allowed else "deny"
        reason = decision.reason
        self.audit.emit_decision(
            decision.request_id,
            (  # in the order of bastion.audit._log.DECISION_FIELDS
                request.client_ip,
                request.method,
                request.host,
                request.path,
                route,
                front_door,
                principal.subject if principal is not None else None,
                credential,
                principal.key_id if principal is not None else None,
                principal.issuer if principal is not None else None,
                outcome,
                decision.status,
                reason,
            ),
            round(seconds * 1e6) / 1000,  # ms to the µs; round(x, 3) costs 5x more
        )
        self.metrics.decision(
            route=route or "_none",
            outcome=outcome,
            credential=credential or "none",
            reason=reason,
            front_door=front_door,
            seconds=seconds,
        )
        if decision.status == 429 and decision.error is not None:
            self.metrics.rate_limit_denied(decision.reason.removeprefix("rate_limited:"))


@dataclass
class Runtime:
    config: Config
    keyring: Keyring
    engine: AsyncEngine
    gateway: Gateway
    trust: Trust
    proxy: Proxy
    limiter: RateLimiter
    audit: AuditLog
    metrics: Metrics
    revocations: InMemoryRevocations
    metrics_trust: Trust
    oauth: AuthorizationServer | None = None
    # In-process counters for requests that only take access away, while the shared
    # (Redis) counters are out: such a request is limited, never refused (see app.py).
    local_limiter: RateLimiter | None = None
    closers: list[Any] = field(default_factory=list)
    _jwks: dict[str, Any] = field(default_factory=dict)
    _ready: tuple[float, dict[str, bool]] = (0.0, {})
    _probes: dict[str, asyncio.Task[bool]] = field(default_factory=dict)

    @classmethod
    async def start(cls, config: Config, *, clock: Clock = system_clock) -> Runtime:
        """Open storage, load keys and build the gateway. Raises ConfigError clearly."""
        keyring = load_keyring(config.resolve(config.secrets.master_key_file))
        engine = async_engine(
            config.database_url, query_timeout=config.storage.query_timeout_seconds
        )
        try:
            await ensure_schema(engine, config.database_url)
            return await cls._build(config, keyring, engine, clock)
        except BaseException:
            await engine.dispose()
            raise

    @classmethod
    async def _build(
        cls, config: Config, keyring: Keyring, engine: AsyncEngine, clock: Clock
    ) -> Runtime:
        needed = {m for r in config.routes for m in r.auth}
        if AuthMethod.JWT in needed and not config.issuers and not config.oauth.enabled:
            raise ConfigError("routes accept jwt but no issuers are configured")
        passwords = Passwords()
        api_keys = ApiKeys.from_keyring(
            ApiKeyStore(engine, clock=clock), keyring, config.api_keys, clock=clock
        )
        revocations = InMemoryRevocations(clock=clock)
        limiter = RateLimiter.from_config(
            config.rate_limits,
            config.redis_url,
            key_prefix=redis_key_prefix(config.redis_namespace),
            clock=clock,
        )
        local_limiter = None
        if config.redis_url:
            local_limiter = RateLimiter.from_config(config.rate_limits, None, clock=clock)
        audit_path = config.audit.path
        if audit_path != "-":
            audit_path = str(config.resolve(Path(audit_path)))
        audit = AuditLog(audit_path, api_key_prefixes=(config.api_keys.prefix,), clock=clock)
        authenticators: dict[AuthMethod, Authenticator] = {
            AuthMethod.BASIC: BasicAuthenticator(
                UserStore(engine, clock=clock), config.basic, passwords
            ),
            AuthMethod.API_KEY: ApiKeyAuthenticator(api_keys, config.api_keys),
        }
        trust = Trust(config.forwarded.trusted_proxies)
        throttle = CredentialThrottle(limiter)  # the gateway's, the admin API's, the device page's
        oauth = None
        if config.oauth.enabled:
            # bastion's own authorization server; the gateway accepts its tokens as an
            # implicit issuer (docs/oauth.md).
            from bastion.oauth import mount

            oauth = await mount(
                config,
                engine,
                keyring,
                revocations=revocations,
                emit=audit.emit,
                passwords=passwords,
                throttle=throttle,
                admin_auth=_AdminAuth(authenticators, throttle),
                trust=trust,
                clock=clock,
            )
        bearer, jwt_method = _bearer(config, clock, revocations, oauth)
        authenticators[AuthMethod.JWT] = jwt_method
        signer = None
        if any(r.assertion for r in config.routes):
            async with session_factory(engine)() as session:
                try:
                    signer = await AssertionSigner.load(
                        session,
                        keyring,
                        issuer=config.issuer_url,
                        ttl=config.identity.assertion_ttl_seconds,
                        clock=clock,
                    )
                except LookupError:
                    raise ConfigError(
                        "routes ask for signed assertions but no signing key exists "
                        "(run 'bastion init')"
                    ) from None
        async with session_factory(engine)() as session:
            jwks = await publish_jwks(session, purpose=ASSERTION_PURPOSE, clock=clock)
        metrics = Metrics(routes=[r.name for r in config.routes])
        metrics.watch_audit(lambda: audit.held_bytes)
        gateway = Gateway(
            config,
            authenticators=authenticators,
            limiter=limiter,
            observer=AuditObserver(audit, metrics),
            signer=signer,
            throttle=throttle,
            clock=clock,
        )
        proxy = Proxy(gateway, trust, on_upstream_error=metrics.upstream_error)
        metrics.watch_websockets(lambda: proxy.open_websockets)
        if any(route.upstream is not None for route in config.routes):
            await proxy.start()  # else its HTTP client (aiohttp) is never loaded
        runtime = cls(
            config=config,
            keyring=keyring,
            engine=engine,
            gateway=gateway,
            trust=trust,
            proxy=proxy,
            limiter=limiter,
            audit=audit,
            metrics=metrics,
            revocations=revocations,
            metrics_trust=Trust(config.system.metrics_allow),
            oauth=oauth,
            local_limiter=local_limiter,
            _jwks=jwks,
        )
        runtime.closers = [
            *([oauth.aclose] if oauth is not None else []),
            proxy.close,
            api_keys.aclose,
            bearer.aclose,
            limiter.aclose,
            *([local_limiter.aclose] if local_limiter is not None else []),
            audit.aclose,
            passwords.close,
        ]
        return runtime

    def metrics_allowed(self, peer: str) -> bool:
        return self.metrics_trust.trusted(peer)

    def public_jwks(self) -> dict[str, Any]:
        """Every current public key: assertion keys, and the authorization server's
        (pending and retiring ones included) kept fresh by its key reloader."""
        if self.oauth is not None:
            return self.oauth.server.ctx.keys.public_jwks()
        return self._jwks

    async def readiness(self) -> dict[str, bool]:
        """Database (and Redis) reachable, answered within ``READINESS_SECONDS``; cached
        briefly so probes cannot load them."""
        checked_at, result = self._ready
        now = time.monotonic()
        if result and now - checked_at < READINESS_TTL:
            return result
        probes = {"database": self._probe("database", lambda: check_schema(self.engine))}
        if self.config.redis_url:
            probes["redis"] = self._probe("redis", self._redis_answers)
        await asyncio.wait(probes.values(), timeout=READINESS_SECONDS)
        checks = {name: _passed(probe) for name, probe in probes.items()}
        checks["audit"] = not self.audit.failing
        self._ready = (now, checks)
        return checks

    def _probe(self, name: str, check: Callable[[], Awaitable[bool]]) -> asyncio.Task[bool]:
        """The check still running from an earlier probe, else a new one."""
        probe = self._probes.get(name)
        if probe is None or probe.done():
            probe = self._probes[name] = asyncio.ensure_future(check())
        return probe

    async def _redis_answers(self) -> bool:
        try:
            await self.limiter.hit("readyz", "1000000/second", "probe")
        except Exception:  # noqa: BLE001 - any failure means not ready
            return False
        return True

    async def aclose(self) -> None:
        """Close everything; each part gets at most ``CLOSE_SECONDS`` (one that takes
        longer is left behind, and said so in the log), so shutdown never hangs."""
        await stop_tasks(self._probes.values(), CLOSE_SECONDS, "readiness probes")
        for close in self.closers:
            with contextlib.suppress(Exception):
                result = close()
                if asyncio.iscoroutine(result):
                    await within(result, CLOSE_SECONDS, f"closing {_name(close)}")
        await within(self.engine.dispose(), CLOSE_SECONDS, "closing the database pool")


def _passed(probe: asyncio.Task[bool]) -> bool:
    return probe.done() and not probe.cancelled() and probe.exception() is None and probe.result()


def _name(close: Any) -> str:
    owner = getattr(close, "__self__", None)
    return type(owner).__name__ if owner is not None else getattr(close, "__name__", "?")


def _bearer(
    config: Config,
    clock: Clock,
    revocations: InMemoryRevocations,
    oauth: AuthorizationServer | None,
) -> tuple[BearerAuthenticator, Authenticator]:
    """The ``jwt`` method: configured issuers, plus bastion's own tokens when the
    authorization server runs."""
    options: dict[str, Any] = {
        "clock": clock,
        "realm": config.basic.realm,
        "api_key_prefix": config.api_keys.prefix,
        "max_authorization_bytes": config.limits.max_authorization_bytes,
        "revoked": revocations,
    }
    if oauth is None:
        bearer = BearerAuthenticator.from_config(config.issuers, **options)
        return bearer, bearer
    from bastion.oauth.resource import OwnTokenAuthenticator

    bearer = BearerAuthenticator.from_config(
        config.issuers, extra_verifiers=[oauth.server.tokens.verifier], **options
    )
    return bearer, OwnTokenAuthenticator(bearer, oauth.server.tokens)


class _AdminAuth:
    """Authenticates admin-API callers with the gateway's own API-key and Basic methods,
    through the gateway's failed-credential throttle (an owner spared there is spared
    here, and the reverse); the role check is the caller's."""

    def __init__(
        self, authenticators: dict[AuthMethod, Authenticator], throttle: CredentialThrottle
    ) -> None:
        self._authenticators = authenticators
        self._throttle = throttle

    async def __call__(self, request: RequestView) -> Principal:
        for method in (AuthMethod.API_KEY, AuthMethod.BASIC, AuthMethod.JWT):
            authenticator = self._authenticators.get(method)
            if authenticator is None or not authenticator.present(request):
                continue
            account, ip = authenticator.account(request), request.client_ip
            blocked = await self._throttle.failures_blocked(account=account, ip=ip)
            if blocked is not None:
                raise RateLimited("failed_auth_throttled", retry_after=blocked.reset_after,
                                  headers=blocked.headers())  # fmt: skip
            try:
                principal = await authenticator.authenticate(request)
            except AuthenticationError:
                await self._throttle.record_failure(account=account, ip=ip)
                raise
            await self._throttle.record_success(account=account, ip=ip)
            return principal
        raise AuthenticationError("no_credentials")
