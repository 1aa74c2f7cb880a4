"""Plain values that flow through the decision core; no framework imports here."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Clock = Callable[[], float]
"""Seconds since the epoch; pass ``time.time`` in production, a fake in tests."""

system_clock: Clock = time.time


class CredentialType(enum.StrEnum):
    BASIC = "basic"
    API_KEY = "api_key"
    JWT = "jwt"
    ANONYMOUS = "anonymous"


@dataclass(slots=True)
class RequestView:
    """What the decision core sees of a request, whichever front door received it
    (read-only by convention: one is built per request, and a frozen dataclass costs
    a microsecond more to build).

    ``headers`` keys are lower-case; a header sent more than once is joined with ", ".
    ``secure`` is true when the client reached bastion (or the proxy in front of it) over TLS.
    """

    method: str
    path: str
    query: str = ""
    host: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    client_ip: str = ""
    secure: bool = False
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made the request, as proven by one credential."""

    subject: str
    credential: CredentialType
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    issuer: str | None = None
    client_id: str | None = None
    key_id: str | None = None
    expires_at: float | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


ANONYMOUS = Principal(subject="anonymous", credential=CredentialType.ANONYMOUS)
