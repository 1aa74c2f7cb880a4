"""What an allowed request carries to the upstream and which limits it counts against,
made once per (principal, route) pair: the identity headers, the signed assertion and
the post-authentication rate-limit checks (DESIGN.md's flow: authorize → rate limit
(post-auth) → identity headers to upstream)."""

from __future__ import annotations

from typing import NamedTuple

from bastion.config import Config
from bastion.gateway._ports import AssertionSigner, Limiter
from bastion.gateway.routes import Route
from bastion.model import ANONYMOUS, CredentialType, Principal, RequestView
from bastion.ratelimit import Prepared

_HEADER_SAFE = frozenset(chr(c) for c in range(0x20, 0x7F)) - {"%"}
_PLANS_MAX = 4096


def header_safe(value: str) -> str:
    """A claim value made safe for an HTTP header: anything but printable ASCII is
    percent-encoded (UTF-8), so a ``sub`` with CR/LF cannot inject headers."""
    if value.isascii() and value.isprintable() and "%" not in value:
        return value  # the common case, decided in C
    return "".join(
        ch if ch in _HEADER_SAFE else "".join(f"%{b:02X}" for b in ch.encode()) for ch in value
    )


def _header_list(values: frozenset[str]) -> str:
    """Scopes or roles as one header value, space-separated: a space inside one (a
    token's ``scp`` list, an identity provider's group name) is percent-encoded, so
    ``"viewer admin"`` cannot read as the two roles ``viewer`` and ``admin``."""
    return " ".join(sorted(header_safe(v).replace(" ", "%20") for v in values))


class Plan(NamedTuple):
    block: tuple[tuple[str, str], ...]  # identity headers but the request id and assertion
    checks: Prepared  # post-authentication rate limits


class Plans:
    """The :class:`Plan` of each principal on each route. The same principals reach the
    same routes over and over: plans are made once (bounded); every field they depend
    on is in the key."""

    def __init__(self, config: Config, limiter: Limiter, signer: AssertionSigner | None) -> None:
        self.limiter = limiter
        self.signer = signer
        self._rates = config.rate_limits
        self._prefix = config.identity.header_prefix
        self._request_id_header = self._prefix + "Request-Id"
        self._assertion_header = config.identity.assertion_header
        self._plans: dict[tuple[object, ...], Plan] = {}

    def of(self, principal: Principal, route: Route) -> Plan:
        key = (
            principal.subject,
            principal.credential,
            principal.scopes,
            principal.roles,
            principal.issuer,
            principal.client_id,
            principal.key_id,
            route.name,
        )
        plan = self._plans.get(key)
        if plan is None:
            plan = Plan(
                self._block(principal, route), self.limiter.prepare(self._checks(principal, route))
            )
            if len(self._plans) >= _PLANS_MAX:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def _checks(self, principal: Principal, route: Route) -> list[tuple[str, str | None, str]]:
        if principal is ANONYMOUS:
            return []
        rates = self._rates
        subject = f"{principal.credential.value}:{principal.subject}"
        checks: list[tuple[str, str | None, str]] = [("principal", rates.per_principal, subject)]
        if principal.client_id:
            checks.append(("client", rates.per_client, principal.client_id))
        if principal.key_id and principal.credential is CredentialType.API_KEY:
            checks.append(("api_key", rates.per_api_key, principal.key_id))
        checks.append((route.limit_policy, route.config.rate_limit, subject))
        return checks

    def _block(self, principal: Principal, route: Route) -> tuple[tuple[str, str], ...]:
        p = self._prefix
        is_key = principal.credential is CredentialType.API_KEY
        # Every name is always present (empty when unknown), so a proxy that copies a
        # fixed list never forwards a client's own value or a literal placeholder.
        return (
            (p + "Subject", header_safe(principal.subject)),
            (p + "Credential", principal.credential.value),
            (p + "Scopes", _header_list(principal.scopes)),
            (p + "Roles", _header_list(principal.roles)),
            (p + "Issuer", header_safe(principal.issuer or "")),
            (p + "Client", header_safe(principal.client_id or "")),
            (p + "Key-Id", header_safe(principal.key_id or "") if is_key else ""),
            (p + "Route", route.name),
        )

    def identity_headers(
        self, plan: Plan, principal: Principal, route: Route, request: RequestView
    ) -> list[tuple[str, str]]:
        """The plan's headers with this request's id and, where the route asks, its
        signed assertion."""
        headers = [*plan.block, (self._request_id_header, request.request_id)]
        if route.config.assertion and self.signer is not None:
            audience = str(route.config.upstream) if route.config.upstream else route.name
            token = self.signer.sign(principal, audience, request.request_id)
        else:
            token = ""
        headers.append((self._assertion_header, token))
        return headers
