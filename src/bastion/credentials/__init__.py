"""Credential methods: each extracts one kind of credential from a request and verifies it.

An :class:`Authenticator` never sees a framework object, only a
:class:`~bastion.model.RequestView`. It raises a :class:`~bastion.errors.AuthenticationError`
subclass when a credential of its kind is present but bad, and returns a
:class:`~bastion.model.Principal` when it is good.
"""

from __future__ import annotations

from typing import Protocol

from bastion.config import AuthMethod
from bastion.model import Principal, RequestView


class Authenticator(Protocol):
    method: AuthMethod

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

    async def authenticate(self, request: RequestView) -> Principal:
        """Verify the credential. Raises AuthenticationError (never returns None)."""
