"""Credential methods: each extracts one kind of credential from a request and verifies it.

An :class:`Authenticator` never sees a framework object, only a
:class:`~bastion.model.RequestView`. It raises a :class:`~bastion.errors.AuthenticationError`
subclass when a credential of its kind is present but bad, and returns a
:class:`~bastion.model.Principal` when it is good.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from bastion.config import AuthMethod
from bastion.model import Principal, RequestView

Revalidator = Callable[[], bool]
"""See :meth:`Authenticator.revalidator`."""


class Authenticator(Protocol):
    method: AuthMethod
    # Lower-case names of the headers authenticate_now() reads: with the query string,
    # all it reads of a request. The gateway remembers a credential accepted without
    # I/O under a digest of them (see revalidator); empty: the method's credentials are
    # not remembered there (it has its own cache, or checks every time).
    credential_headers: tuple[str, ...]

    def present(self, request: RequestView) -> bool:
        """Whether the request carries a credential of this method (cheap, no I/O)."""

    def account(self, request: RequestView) -> str | None:
        """The account the credential claims (for brute-force throttling), if any."""

    def challenge(self, error: str | None = None) -> str:
        """The ``WWW-Authenticate`` challenge for this method (RFC 7235 §4.1)."""

    def authenticate_now(self, request: RequestView) -> Principal | None:
        """The principal when proving it needs no I/O (a credential verified before and
        still valid), else None: :meth:`authenticate` then verifies or refuses it.
        Never raises for a bad credential."""

    def revalidator(self, request: RequestView, principal: Principal) -> Revalidator | None:
        """Called right after ``authenticate_now(request)`` returned ``principal``: a check
        that stays True exactly while ``authenticate_now`` would still return it for the
        same credential without I/O (expiry, revocation, the cache entry it came from), and
        that does what a successful ``authenticate_now`` does besides (last-used
        bookkeeping). None when the method cannot promise that: the gateway then asks
        ``authenticate_now`` every time."""

    async def authenticate(self, request: RequestView) -> Principal:
        """Verify the credential. Raises AuthenticationError (never returns None)."""
