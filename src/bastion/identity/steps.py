"""The second-factor login steps (TOTP, recovery code) and how ``acr``/``amr`` follow
from what a user proved (RFC 8176 method references).

A password is ``pwd``; a TOTP or recovery code ``otp``; a passkey with user verification
``hwk`` (or ``swk`` when it is synced, i.e. backup eligible) plus ``mfa``, because user
verification is a PIN or a biometric on top of possession. Two different factors, or a
passkey, give ``acr`` = ``urn:bastion:acr:mfa``; anything else ``urn:bastion:acr:password``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bastion.errors import RateLimited
from bastion.identity import totp
from bastion.identity._store import IdentityStore
from bastion.model import Clock, system_clock
from bastion.oauth._context import ACR_MFA, ACR_PASSWORD
from bastion.oauth.login import StepResult, Throttle

# "fed" (a sign-in at an external provider, bastion's own value) counts as a first factor.
KNOWLEDGE = frozenset({"pwd", "pin", "kba", "fed"})
POSSESSION = frozenset({"otp", "hwk", "swk", "sms"})
INHERENCE = frozenset({"fpt", "face", "iris", "retina", "vbm"})
WRONG_CODE = "That code is not right. Try again."


def assurance(amr: Iterable[str]) -> tuple[str, tuple[str, ...]]:
    """``(acr, amr)`` for the methods proved, ``mfa`` added when two factors are."""
    methods = tuple(dict.fromkeys(a for a in amr if a != "mfa"))
    kinds = sum(bool(set(methods) & kind) for kind in (KNOWLEDGE, POSSESSION, INHERENCE))
    if kinds >= 2 or "mfa" in amr:
        return ACR_MFA, (*methods, "mfa")
    return ACR_PASSWORD, methods


def _blocked() -> RateLimited:
    return RateLimited("login_throttled", retry_after=60, headers=[("Retry-After", "60")])


class TotpStep:
    """A 6-digit code from the user's authenticator app, once per time step."""

    name = "totp"
    amr: tuple[str, ...] = ("otp",)
    template = "mfa.html"

    def __init__(self, store: IdentityStore, throttle: Throttle, clock: Clock = system_clock):
        self._store = store
        self._throttle = throttle
        self._clock = clock

    async def verify(
        self, form: Mapping[str, str], *, subject: str | None, client_ip: str
    ) -> StepResult:
        if subject is None:
            return StepResult(message=WRONG_CODE)
        if await self._throttle.failures_blocked(account=subject, ip=client_ip) is not None:
            raise _blocked()
        record = await self._store.totp(subject)
        step = None
        if record is not None and record.confirmed:
            step = totp.matching_step(record.secret, form.get("code", "")[:16], self._clock())
        if step is None or not await self._store.use_totp_step(subject, step):
            await self._throttle.record_failure(account=subject, ip=client_ip)
            return StepResult(message=WRONG_CODE)
        return StepResult(subject=subject)


class RecoveryCodeStep:
    """One of the user's recovery codes, each once."""

    name = "recovery"
    amr: tuple[str, ...] = ("otp",)
    template = "mfa.html"

    def __init__(self, store: IdentityStore, throttle: Throttle) -> None:
        self._store = store
        self._throttle = throttle

    async def verify(
        self, form: Mapping[str, str], *, subject: str | None, client_ip: str
    ) -> StepResult:
        if subject is None:
            return StepResult(message=WRONG_CODE)
        if await self._throttle.failures_blocked(account=subject, ip=client_ip) is not None:
            raise _blocked()
        if not await self._store.use_recovery_code(subject, form.get("code", "")[:64]):
            await self._throttle.record_failure(account=subject, ip=client_ip)
            return StepResult(message=WRONG_CODE)
        return StepResult(subject=subject)
