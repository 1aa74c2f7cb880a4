"""The outcome of one decision, and how any front door renders a denial."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from bastion.errors import BastionError
from bastion.gateway.routes import Route
from bastion.model import Principal

PROBLEM_TYPE = "application/problem+json"


@dataclass(slots=True)
class Decision:
    allowed: bool
    status: int
    request_id: str
    path: str = ""  # the normalised (decoded) path the decision matched
    route: Route | None = None
    principal: Principal | None = None
    error: BastionError | None = None
    # Headers for the client: challenges, RateLimit-*, Retry-After.
    headers: list[tuple[str, str]] = field(default_factory=list)
    # Headers for the upstream on allow: identity and the signed assertion.
    upstream_headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def code(self) -> str:
        return self.error.code if self.error is not None else "ok"

    @property
    def reason(self) -> str:
        return self.error.reason if self.error is not None else "ok"

    def problem_body(self) -> bytes:
        """RFC 9457 problem details: a stable code, a generic title, never internals."""
        error = self.error
        title = error.title if error is not None else "Error"
        body: dict[str, object] = {
            "type": "about:blank",
            "title": title,
            "status": self.status,
            "code": self.code,
            "request_id": self.request_id,
        }
        if error is not None and error.detail:
            body["detail"] = error.detail
        return orjson.dumps(body)
