"""The decision core: one request in, one :class:`Decision` out.

It knows nothing of the front door that called it (DESIGN.md, "The flow of one
request"): route match → input guard → pre-auth rate limit → authenticate →
authorize → post-auth rate limits → audit. Any error denies (fail closed).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from typing import NamedTuple

from bastion.config import AuthMethod, Config
from bastion.credentials import Authenticator, Revalidator
from bastion.errors import (
    AuthenticationError,
    BastionError,
    Forbidden,
    InsufficientScope,
    InsufficientUserAuthentication,
    InternalError,
    InvalidToken,
    RateLimited,
    Unavailable,
)
from bastion.gateway._inputs import InputGuard
from bastion.gateway._owners import CredentialThrottle
from bastion.gateway._plans import Plans
from bastion.gateway._ports import AssertionSigner, Limiter, Observer
from bastion.gateway._upgrade import check_ambient_origin, check_handshake, wants_websocket
from bastion.gateway.decision import Decision
from bastion.gateway.routes import Route, RouteTable
from bastion.model import ANONYMOUS, Clock, CredentialType, Principal, RequestView, system_clock
from bastion.ratelimit import LimitResult, Prepared, ip_bucket

log = logging.getLogger("bastion.gateway")


class _Known(NamedTuple):
    """A credential this gateway accepted without I/O on a route, and how to tell that
    the same credential would still be accepted the same way (see ``_authenticate_now``)."""

    principal: Principal
    valid: Revalidator


_KNOWN_MAX = 4096


class Gateway:
    """The one decision core every front door calls."""

    def __init__(
        self,
        config: Config,
        *,
        authenticators: Mapping[AuthMethod, Authenticator],
        limiter: Limiter,
        observer: Observer,
        signer: AssertionSigner | None = None,
        throttle: CredentialThrottle | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.config = config
        self.routes = RouteTable(config.routes)
        self.authenticators = dict(authenticators)
        self.limiter = limiter
        self.observer = observer
        self.signer = signer
        self.clock = clock
        self._rates = config.rate_limits
        self._issuer_by_name = {i.name: i.issuer for i in config.issuers}
        prefix = config.identity.header_prefix
        self._spoofable = (prefix.lower(), config.identity.assertion_header.lower())
        self.plans = Plans(config, limiter, signer)
        self._ip_checks: dict[str, Prepared] = {}
        self._known: dict[tuple[str, AuthMethod, bytes], _Known] = {}
        # Shared with the admin API and the device page (runtime): an owner spared on
        # one is spared on all.
        self.throttle = throttle if throttle is not None else CredentialThrottle(limiter)
        self._owners = self.throttle.owners
        self.inputs = InputGuard(config, self.routes)
        missing = {m for r in self.routes.routes for m in r.auth} - set(self.authenticators)
        if missing:
            names = ", ".join(sorted(m.value for m in missing))
            raise ValueError(f"routes use auth methods with no authenticator: {names}")

    def is_identity_header(self, name: str) -> bool:
        """Whether a client-supplied header would spoof an identity header (always dropped)."""
        lowered = name.lower()
        return lowered.startswith(self._spoofable[0]) or lowered == self._spoofable[1]

    def match(self, request: RequestView) -> tuple[str, Route]:
        """Normalise the path and find the route; raises a BastionError on failure."""
        return self.inputs.match(request)

    async def decide(
        self, request: RequestView, front_door: str, *, observe: bool = True
    ) -> Decision:
        """Decide one request. Never raises: every failure is a denial. With ``observe``
        false the front door observes the decision itself (after :meth:`require`)."""
        started = time.perf_counter()
        decision = Decision(allowed=False, status=500, request_id=request.request_id)
        try:
            if self.observer.blocked:  # what is decided could not be recorded
                raise Unavailable("audit_unavailable")
            await self._decide(request, decision)
        except BastionError as exc:
            self._deny(decision, exc)
        except Exception:  # fail closed on any bug or dependency failure
            log.exception("decision failed", extra={"request_id": request.request_id})
            self._deny(decision, InternalError("unexpected_error"))
        if observe:
            self.observer.decided(request, decision, front_door, time.perf_counter() - started)
        return decision

    async def require(
        self, request: RequestView, decision: Decision, *, methods: tuple[AuthMethod, ...] | None,
        scopes: frozenset[str], roles: frozenset[str],
    ) -> None:  # fmt: skip
        """An endpoint's own needs on top of an allowed ``decision`` (the embedded front
        door's ``require()``): credential ``methods`` (any; None: every method), ``scopes``
        (all), ``roles`` (any). On a public route the request is authenticated here first
        (throttled, rate-limited per principal, as on any route). A refusal denies
        ``decision`` as the core's own refusals are, challenges naming these needs."""
        accepted = methods if methods is not None else tuple(self.authenticators)
        route = decision.route
        try:
            principal = decision.principal
            if principal is ANONYMOUS and route is not None and route.config.public:
                principal = await self._authenticate(request, route, accepted)
                decision.principal = principal
                plan = self.plans.of(principal, route)
                if plan.checks:
                    self._tighter(await self.limiter.hit_all(plan.checks), None)
            if principal is None or principal.credential is CredentialType.ANONYMOUS:
                raise AuthenticationError("no_principal")
            if principal.credential.value not in {m.value for m in accepted}:
                raise AuthenticationError("credential_method_not_allowed")
            if not scopes <= principal.scopes:
                raise InsufficientScope("missing_scope")
            if roles and roles.isdisjoint(principal.roles):
                raise Forbidden("missing_role")  # as _authorize: a role is not a scope
        except BastionError as exc:
            self._deny(decision, exc, methods=accepted, scopes=scopes)
        except Exception:  # fail closed, as decide does
            log.exception("requirement failed", extra={"request_id": request.request_id})
            self._deny(decision, InternalError("unexpected_error"))

    async def limit_address(
        self, request: RequestView, front_door: str, *, fallback: Limiter | None = None
    ) -> Decision | None:
        """The pre-authentication per-address limit alone, for requests the core does not
        decide (the authorization server's endpoints, which authenticate themselves):
        None within it, else the denial — 429, or 503 when the counters cannot be
        reached — observed like any decision.

        Args:
            fallback: in-process counters that count instead while the shared ones
                cannot be reached (for requests that only take access away: refusing
                those would keep access open), else None (fail closed).
        """
        started = time.perf_counter()
        limiter = self.limiter
        check = self._ip_checks.get(request.client_ip)
        if check is None:
            check = self._ip_check(request.client_ip)
        try:
            local = limiter.in_process
            try:
                result = limiter.hit_all_now(check) if local else await limiter.hit_all(check)
            except Unavailable:
                if fallback is None:
                    raise
                result = fallback.hit_all_now(check)
            self._tighter(result, None)  # raises RateLimited when denied
        except BastionError as exc:
            decision = Decision(allowed=False, status=exc.status, request_id=request.request_id)
            self._deny(decision, exc)
            self.observer.decided(request, decision, front_door, time.perf_counter() - started)
            return decision
        return None

    async def recheck(
        self, request: RequestView, route: Route, front_door: str, *, handshake: Principal
    ) -> Decision | None:
        """A WebSocket's credential checked again while its connection is open (the
        handshake ``request``, on the ``route`` it was allowed on, as ``handshake``):
        None while it holds, else the denial, observed like any decision. Past the
        credential's expiry it is refused outright (no verification leeway); else it is
        verified afresh (revocation, a disabled user, changed scopes), with no rate limit
        (the connection counted once when it opened) and no failure counted against the
        failed-credential throttle (its owner sent nothing new)."""
        if route.config.public:
            return None
        started = time.perf_counter()
        decision = Decision(
            allowed=False, status=500, request_id=request.request_id, path=request.path
        )
        decision.route = route
        try:
            if self.observer.blocked:
                raise Unavailable("audit_unavailable")
            expires_at = handshake.expires_at
            if expires_at is not None and self.clock() >= expires_at:
                decision.principal = handshake
                if handshake.credential is CredentialType.JWT:
                    raise InvalidToken("token_expired")
                raise AuthenticationError("credential_expired")
            principal = await self._choose(request, route.auth).authenticate(request)
            if not self._issuer_allowed(principal, route):
                raise InvalidToken("issuer_not_allowed_on_route")
            decision.principal = principal
            if route.assurance:
                self._check_assurance(principal, route)
            self._authorize(principal, route)
            return None
        except BastionError as exc:
            self._deny(decision, exc)
        except Exception:  # fail closed, as decide does
            log.exception("recheck failed", extra={"request_id": request.request_id})
            self._deny(decision, InternalError("unexpected_error"))
        self.observer.decided(request, decision, front_door, time.perf_counter() - started)
        return decision

    def _deny(
        self, decision: Decision, error: BastionError, *,
        methods: tuple[AuthMethod, ...] | None = None, scopes: frozenset[str] | None = None,
    ) -> None:  # fmt: skip
        """Deny ``decision`` with ``error`` and its challenges: for the route's methods and
        scopes, or for ``methods`` and ``scopes`` when an endpoint's needs refused it."""
        route = decision.route
        decision.allowed = False
        decision.status = error.status
        decision.error = error
        decision.upstream_headers = []
        if isinstance(error, RateLimited):
            # Report the exhausted policy, not an earlier one that still had room.
            decision.headers = list(error.headers)
        elif isinstance(error, InsufficientUserAuthentication) and route is not None:
            decision.headers.append(("WWW-Authenticate", self._step_up(route)))
        elif isinstance(error, AuthenticationError):
            if methods is None:
                methods = route.auth if route is not None else tuple(self.authenticators)
            decision.headers.extend(self._challenges(methods, error))
        elif isinstance(error, InsufficientScope) and (route is not None or scopes is not None):
            if scopes is None and route is not None:
                scopes = route.scopes
            scope = " ".join(sorted(scopes or ()))
            decision.headers.append(
                (
                    "WWW-Authenticate",
                    f'Bearer realm="{self.config.basic.realm}", error="insufficient_scope", '
                    f'scope="{scope}"',
                )
            )

    def _step_up(self, route: Route) -> str:
        """RFC 9470 §3 challenge: what the client asks the authorization server for."""
        challenge = (
            f'Bearer realm="{self.config.basic.realm}", error="insufficient_user_authentication"'
            ', error_description="A different authentication level is required"'
        )
        if route.config.acr is not None:
            challenge += f', acr_values="{route.config.acr}"'
        if route.config.max_age is not None:
            challenge += f", max_age={route.config.max_age}"
        return challenge

    def _check_assurance(self, principal: Principal, route: Route) -> None:
        """RFC 9470: the route's ``acr`` and ``max_age`` against the token's claims."""
        required, max_age = route.config.acr, route.config.max_age
        if required is None and max_age is None:
            return
        claims = principal.claims
        if required is not None and claims.get("acr") != required:
            raise InsufficientUserAuthentication("acr_too_weak")
        if max_age is not None:
            auth_time = claims.get("auth_time")
            if not isinstance(auth_time, int) or self.clock() - auth_time > max_age:
                raise InsufficientUserAuthentication("authentication_too_old")

    def _challenges(
        self, methods: tuple[AuthMethod, ...], error: AuthenticationError
    ) -> list[tuple[str, str]]:
        bearer_error = error.code if isinstance(error, InvalidToken) else None
        return [
            ("WWW-Authenticate", self.authenticators[m].challenge(bearer_error))
            for m in methods
            if m in self.authenticators
        ]

    @staticmethod
    def _tighter(result: LimitResult | None, tightest: LimitResult | None) -> LimitResult | None:
        """Raise for a denied check; else whichever result has fewer units left."""
        if result is None:
            return tightest
        if not result.allowed:
            raise RateLimited(
                f"rate_limited:{result.policy}",
                retry_after=result.reset_after,
                headers=result.headers(),
            )
        if tightest is None or result.remaining < tightest.remaining:
            return result
        return tightest

    async def _decide(self, request: RequestView, decision: Decision) -> None:
        decision.path, route = self.inputs.match(request)
        decision.route = route
        websocket = "upgrade" in request.headers and wants_websocket(request.headers)
        if websocket:
            check_handshake(request, route)
        self.inputs.check(request, route)
        limiter = self.limiter
        # In-process counters and a credential verified before answer without I/O: the
        # common request then makes no coroutine beyond this one.
        local = limiter.in_process
        ip = self._ip_checks.get(request.client_ip)
        if ip is None:
            ip = self._ip_check(request.client_ip)
        tightest = limiter.hit_all_now(ip) if local else await limiter.hit_all(ip)
        if tightest is not None and not tightest.allowed:
            self._tighter(tightest, None)  # raises
        if route.config.public:
            principal = ANONYMOUS
        else:
            found = self._authenticate_now(request, route) if local else None
            principal = found or await self._authenticate(request, route)
        decision.principal = principal
        if websocket and principal.credential is CredentialType.BASIC:
            check_ambient_origin(request, route)
        if route.assurance and principal is not ANONYMOUS:
            self._check_assurance(principal, route)
        self._authorize(principal, route)
        plan = self.plans.of(principal, route)
        if plan.checks:
            result = (
                limiter.hit_all_now(plan.checks) if local else await limiter.hit_all(plan.checks)
            )
            tightest = self._tighter(result, tightest)
        if tightest is not None:
            # The policy closest to exhaustion is the one the client needs to know.
            decision.headers = tightest.headers()
        decision.allowed = True
        decision.status = 200
        decision.error = None
        decision.upstream_headers = self.plans.identity_headers(plan, principal, route, request)

    def _ip_check(self, client_ip: str) -> Prepared:
        """The per-IP check, prepared once per address (bounded)."""
        if len(self._ip_checks) >= 4096:
            self._ip_checks.clear()
        bucket = ip_bucket(client_ip, self._rates.ipv6_prefix)
        check = self.limiter.prepare((("ip", self._rates.per_ip, bucket),))
        self._ip_checks[client_ip] = check
        return check

    def _choose(self, request: RequestView, methods: tuple[AuthMethod, ...]) -> Authenticator:
        """The first of ``methods`` (a route's) whose credential the request carries."""
        for method in methods:
            candidate = self.authenticators[method]
            if candidate.present(request):
                return candidate
        raise AuthenticationError("no_credentials")

    def _issuer_allowed(self, principal: Principal, route: Route) -> bool:
        if route.issuers is None or principal.credential is not CredentialType.JWT:
            return True
        return principal.issuer in {self._issuer_by_name[name] for name in route.issuers}

    @staticmethod
    def _credential_digest(request: RequestView, names: tuple[str, ...]) -> bytes:
        """SHA-256 over the query and the headers ``names`` (length-prefixed, absent ones
        marked): all a method's ``authenticate_now`` reads. A digest, so no credential
        is kept in memory."""
        get = request.headers.get
        parts = [f"{len(request.query)}:{request.query}"]
        for name in names:
            value = get(name)
            parts.append("-" if value is None else f"{len(value)}:{value}")
        return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogatepass")).digest()

    def _authenticate_now(self, request: RequestView, route: Route) -> Principal | None:
        """:meth:`_authenticate` when it succeeds without I/O (in-process counters, a
        credential verified before); None when it would not, having counted nothing:
        the same steps then run in :meth:`_authenticate`, which raises what they find.

        A credential accepted this way on a route is remembered (bounded) under the
        digest of what its method read to accept it, with the method's revalidator: the
        same credential then skips parsing, looking up and checking it again. The
        revalidator follows the method's own cache (expiry, revocation, invalidation) and
        is asked after the failed-credential throttle, as ``authenticate_now`` is, so
        the answer is the one those steps would give; anything else takes the steps."""
        authenticator = self._choose(request, route.auth)
        recent = self.limiter.failures_recent
        if recent and self._throttled_now(authenticator, request):
            return None
        names = authenticator.credential_headers
        if names:
            key = (route.name, authenticator.method, self._credential_digest(request, names))
            known = self._known.get(key)
            if known is not None:
                if known.valid():
                    if recent:  # credentials are failing somewhere: note who this is
                        self._owners.note(authenticator.account(request), request.client_ip)
                    return known.principal
                del self._known[key]
        principal = authenticator.authenticate_now(request)
        if principal is None or (
            route.issuers is not None and not self._issuer_allowed(principal, route)
        ):
            return None
        if recent:
            self._owners.note(authenticator.account(request), request.client_ip)
        if names:
            valid = authenticator.revalidator(request, principal)
            if valid is not None:
                if len(self._known) >= _KNOWN_MAX:
                    self._known.clear()
                self._known[key] = _Known(principal, valid)
        return principal

    def _throttled_now(self, authenticator: Authenticator, request: RequestView) -> bool:
        account, ip = authenticator.account(request), request.client_ip
        return self.throttle.failures_blocked_now(account=account, ip=ip) is not None

    async def _authenticate(
        self, request: RequestView, route: Route, methods: tuple[AuthMethod, ...] | None = None
    ) -> Principal:
        authenticator = self._choose(request, route.auth if methods is None else methods)
        account = authenticator.account(request)
        ip = request.client_ip
        blocked = await self.throttle.failures_blocked(account=account, ip=ip)
        if blocked is not None:
            raise RateLimited(
                "failed_auth_throttled", retry_after=blocked.reset_after, headers=blocked.headers()
            )
        try:
            principal = await authenticator.authenticate(request)
        except AuthenticationError:
            await self.throttle.record_failure(account=account, ip=ip)
            raise
        if not self._issuer_allowed(principal, route):
            raise InvalidToken("issuer_not_allowed_on_route")
        await self.throttle.record_success(account=account, ip=ip)
        return principal

    @staticmethod
    def _authorize(principal: Principal, route: Route) -> None:
        if route.scopes and not route.scopes <= principal.scopes:
            raise InsufficientScope("missing_scope")
        if route.roles and route.roles.isdisjoint(principal.roles):
            raise Forbidden("missing_role")
