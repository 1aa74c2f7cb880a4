"""Fakes for unit tests of the decision core (real components are tested elsewhere)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from bastion.config import AuthMethod
from bastion.errors import InvalidToken
from bastion.gateway.decision import Decision
from bastion.model import CredentialType, Principal, RequestView


@dataclass
class FakeOutcome:
    allowed: bool
    policy: str
    reset_after: int = 7
    remaining: int = 3

    def headers(self) -> list[tuple[str, str]]:
        out = [("RateLimit-Policy", f'"{self.policy}";q=5;w=60')]
        if not self.allowed:
            out.append(("Retry-After", str(self.reset_after)))
        return out


Check = tuple[str, str, str]


@dataclass
class FakeLimiter:
    deny_policies: set[str] = field(default_factory=set)
    blocked: bool = False
    hits: list[tuple[str, str, str]] = field(default_factory=list)
    failures: list[tuple[str | None, str]] = field(default_factory=list)
    owners: set[tuple[str, str]] = field(default_factory=set)

    in_process = False  # behaves like a shared (Redis) store: always awaited

    def prepare(self, checks: Iterable[tuple[str, str | None, str]]) -> tuple[Check, ...]:
        return tuple((p, r, k) for p, r, k in checks if r is not None)

    def hit_all_now(self, checks: tuple[Check, ...]) -> NoReturn:
        raise AssertionError("the core called a *_now method of a limiter not in process")

    async def hit_all(self, checks: tuple[Check, ...]) -> FakeOutcome | None:
        tightest = None
        for policy, rate, key in checks:
            self.hits.append((policy, rate, key))
            tightest = FakeOutcome(allowed=policy not in self.deny_policies, policy=policy)
            if not tightest.allowed:
                break
        return tightest

    failures_blocked_now = hit_all_now
    failures_recent = True

    async def failures_blocked(self, *, account: str | None, ip: str) -> FakeOutcome | None:
        return FakeOutcome(False, "failed_auth") if self.blocked else None

    async def record_failure(self, *, account: str | None, ip: str) -> None:
        self.failures.append((account, ip))

    async def remember_owner(self, account: str, ip: str, seconds: int) -> None:
        self.owners.add((account, ip))

    async def owner_known(self, account: str, ip: str) -> bool:
        return (account, ip) in self.owners


@dataclass
class FakeObserver:
    events: list[tuple[RequestView, Decision, str]] = field(default_factory=list)
    blocked: bool = False

    def decided(
        self, request: RequestView, decision: Decision, front_door: str, seconds: float
    ) -> None:
        self.events.append((request, decision, front_door))


class TokenAuthenticator:
    """Accepts ``X-Test-Token: <subject>:<scope,scope>:<role,role>``; 'bad' is invalid."""

    method = AuthMethod.JWT
    credential_headers: tuple[str, ...] = ()

    def __init__(self, issuer: str = "https://issuer.test") -> None:
        self.issuer = issuer
        self.calls = 0
        self.explode = False

    def present(self, request: RequestView) -> bool:
        return "x-test-token" in request.headers

    def account(self, request: RequestView) -> str | None:
        return request.headers["x-test-token"].split(":")[0]

    def challenge(self, error: str | None = None) -> str:
        return 'Bearer realm="bastion"' + (f', error="{error}"' if error else "")

    def authenticate_now(self, request: RequestView) -> Principal | None:
        return None  # every call is counted in authenticate()

    def revalidator(self, request: RequestView, principal: Principal) -> None:
        return None

    async def authenticate(self, request: RequestView) -> Principal:
        self.calls += 1
        if self.explode:
            raise RuntimeError("boom")
        value = request.headers["x-test-token"]
        if value == "bad":
            raise InvalidToken("bad_signature")
        subject, scopes, roles = ([*value.split(":"), "", ""])[:3]
        return Principal(
            subject=subject,
            credential=CredentialType.JWT,
            scopes=frozenset(s for s in scopes.split(",") if s),
            roles=frozenset(r for r in roles.split(",") if r),
            issuer=self.issuer,
            client_id="cli",
        )


class Counted:
    """A real component wrapped to count the awaited calls of one of its methods
    (``calls``); every other attribute is the component's own."""

    def __init__(self, inner: Any, method: str) -> None:
        self._inner = inner
        self._method = method
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name != self._method:
            return value

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await value(*args, **kwargs)

        return counted
