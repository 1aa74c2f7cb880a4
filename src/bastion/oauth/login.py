"""How a user proves who they are at the login page: a chain of login steps.

The first step is :class:`PasswordStep` (``amr: pwd``); TOTP and recovery codes are
further :class:`LoginStep` implementations (bastion.identity.steps), and passkeys sign in
from their own page (bastion.identity._passkey_web). The login handler runs the steps in
order, remembers the completed ones in the browser session, and derives ``acr``/``amr``
from them (:func:`assurance`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from bastion.credentials._passwords import Passwords
from bastion.errors import RateLimited
from bastion.oauth._context import ACR_MFA, ACR_PASSWORD
from bastion.store.users import UserStore


@dataclass(frozen=True, slots=True)
class StepResult:
    """``subject`` when the step succeeded; otherwise a message safe to show."""

    subject: str | None = None
    message: str = ""


class Throttle(Protocol):
    """Failed attempts counted per account and per address. Every throttle spares owners
    alike: an account's block does not hold back an address the account succeeded from
    lately (only that address's own count does), so failing someone's account on purpose
    cannot lock them out. Implemented by bastion.gateway._owners.CredentialThrottle (API
    credentials, the device page) and bastion.identity.lockout.LoginThrottle (the login
    form); tests/identity/test_throttles.py holds both to it."""

    async def failures_blocked(self, *, account: str | None, ip: str) -> object | None:
        """What holds ``account`` at ``ip`` back (None: it may try); consumes nothing."""

    async def record_failure(self, *, account: str | None, ip: str) -> None: ...

    async def record_success(self, *, account: str, ip: str) -> None:
        """``account`` succeeded from ``ip``: its owner is spared there from now on."""


class LoginStep(Protocol):
    """One factor. ``template`` renders its form; ``verify`` checks the posted fields."""

    name: str
    amr: tuple[str, ...]  # RFC 8176 values this step proves
    template: str

    async def verify(
        self, form: Mapping[str, str], *, subject: str | None, client_ip: str
    ) -> StepResult: ...


GENERIC_FAILURE = "Wrong username or password."


class PasswordStep:
    """Username + argon2id password. Unknown user, disabled user and wrong password give
    the same message and cost the same time (a dummy verify); failures are throttled per
    account and per address before any hashing."""

    name = "password"
    amr: tuple[str, ...] = ("pwd",)
    template = "login.html"

    def __init__(self, users: UserStore, passwords: Passwords, throttle: Throttle) -> None:
        self._users = users
        self._passwords = passwords
        self._throttle = throttle

    async def verify(
        self, form: Mapping[str, str], *, subject: str | None, client_ip: str
    ) -> StepResult:
        username = form.get("username", "").strip()
        password = form.get("password", "")
        if not username or not password or len(username) > 255 or len(password) > 1024:
            return StepResult(message=GENERIC_FAILURE)
        if await self._throttle.failures_blocked(account=username, ip=client_ip) is not None:
            raise RateLimited("login_throttled", retry_after=60, headers=[("Retry-After", "60")])
        user = await self._users.get_by_username(username)
        if user is None or user.disabled:
            await self._passwords.verify_dummy(password)
            ok = False
        else:
            ok = await self._passwords.verify(user.password_hash, password)
        if not ok:
            await self._throttle.record_failure(account=username, ip=client_ip)
            return StepResult(message=GENERIC_FAILURE)
        return StepResult(subject=username)


def assurance(completed: Sequence[LoginStep]) -> tuple[str, tuple[str, ...]]:
    """``(acr, amr)`` for the completed steps: two factors or more is ``mfa``."""
    amr = tuple(dict.fromkeys(a for step in completed for a in step.amr))
    if len(completed) > 1:
        return ACR_MFA, (*amr, "mfa")
    return ACR_PASSWORD, amr
