from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bastion.config import AuthMethod, WebSocketConfig, parse_config
from bastion.errors import RateLimited, Unavailable
from bastion.gateway._plans import header_safe
from bastion.gateway.core import Gateway
from bastion.gateway.websocket import Capacity
from bastion.model import CredentialType, Principal, RequestView
from tests.gateway._fakes import FakeLimiter, FakeObserver, TokenAuthenticator

CONFIG: dict[str, Any] = {
    "issuers": [
        {"name": "corp", "issuer": "https://issuer.test", "audiences": ["api"], "keys": [{}]},
        {"name": "other", "issuer": "https://other.test", "audiences": ["api"], "keys": [{}]},
    ],
    "routes": [
        {"name": "health", "path_prefix": "/public", "public": True},
        {"name": "admin", "path_prefix": "/admin", "auth": ["jwt"], "roles": ["admin"]},
        {"name": "corp-only", "path_prefix": "/corp", "auth": ["jwt"], "issuers": ["other"]},
        {
            "name": "api",
            "path_prefix": "/api",
            "methods": ["GET", "POST"],
            "auth": ["jwt"],
            "scopes": ["read"],
            "rate_limit": "5/minute",
            "assertion": True,
        },
    ],
}


class Signer:
    def sign(self, principal: Any, audience: str, request_id: str) -> str:
        return f"signed:{principal.subject}:{audience}"


@pytest.fixture
def parts() -> tuple[Gateway, TokenAuthenticator, FakeLimiter, FakeObserver]:
    auth = TokenAuthenticator()
    limiter = FakeLimiter()
    observer = FakeObserver()
    gateway = Gateway(
        parse_config(CONFIG),
        authenticators={AuthMethod.JWT: auth},
        limiter=limiter,
        observer=observer,
        signer=Signer(),
    )
    return gateway, auth, limiter, observer


def req(path: str = "/api/items", method: str = "GET", **headers: str) -> RequestView:
    h = {k.replace("_", "-").lower(): v for k, v in headers.items()}
    return RequestView(
        method=method, path=path, headers=h, client_ip="203.0.113.9", request_id="r1"
    )


async def test_allowed_request_carries_identity_and_is_observed(parts: Any) -> None:
    gateway, _, limiter, observer = parts
    decision = await gateway.decide(req(x_test_token="alice:read,write:user"), "proxy")
    assert decision.allowed
    assert decision.status == 200
    headers = dict(decision.upstream_headers)
    assert headers["X-Bastion-Subject"] == "alice"
    assert headers["X-Bastion-Scopes"] == "read write"
    assert headers["X-Bastion-Credential"] == "jwt"
    assert headers["X-Bastion-Client"] == "cli"
    assert headers["X-Bastion-Assertion"] == "signed:alice:api"
    policies = [h[0] for h in limiter.hits]
    assert policies == ["ip", "principal", "route:api"]
    assert observer.events[-1][1] is decision
    assert observer.events[-1][2] == "proxy"


async def test_no_credential_is_401_with_challenge(parts: Any) -> None:
    gateway, auth, _, _ = parts
    decision = await gateway.decide(req(), "proxy")
    assert (decision.allowed, decision.status, decision.code) == (False, 401, "unauthenticated")
    assert ("WWW-Authenticate", 'Bearer realm="bastion"') in decision.headers
    assert auth.calls == 0
    assert decision.upstream_headers == []


async def test_bad_credential_is_401_and_counted_as_failure(parts: Any) -> None:
    gateway, _, limiter, _ = parts
    decision = await gateway.decide(req(x_test_token="bad"), "proxy")
    assert decision.status == 401
    assert decision.code == "invalid_token"
    assert decision.reason == "bad_signature"
    assert ("WWW-Authenticate", 'Bearer realm="bastion", error="invalid_token"') in decision.headers
    assert limiter.failures == [("bad", "203.0.113.9")]
    assert b"bad_signature" not in decision.problem_body()


async def test_throttled_account_is_refused_before_verifying(parts: Any) -> None:
    gateway, auth, limiter, _ = parts
    limiter.blocked = True
    decision = await gateway.decide(req(x_test_token="alice:read"), "proxy")
    assert decision.status == 429
    assert auth.calls == 0
    assert ("Retry-After", "7") in decision.headers


async def test_missing_scope_is_403_insufficient_scope(parts: Any) -> None:
    gateway, *_ = parts
    decision = await gateway.decide(req(x_test_token="alice:write"), "proxy")
    assert (decision.status, decision.code) == (403, "insufficient_scope")
    assert (
        "WWW-Authenticate",
        'Bearer realm="bastion", error="insufficient_scope", scope="read"',
    ) in decision.headers


async def test_missing_role_is_403(parts: Any) -> None:
    gateway, *_ = parts
    denied = await gateway.decide(req("/admin/x", x_test_token="bob::user"), "proxy")
    allowed = await gateway.decide(req("/admin/x", x_test_token="eve::admin,user"), "proxy")
    assert (denied.status, denied.code) == (403, "forbidden")
    assert allowed.allowed


async def test_route_issuer_restriction(parts: Any) -> None:
    gateway, *_ = parts
    decision = await gateway.decide(req("/corp/x", x_test_token="alice"), "proxy")
    assert decision.status == 401
    assert decision.reason == "issuer_not_allowed_on_route"


async def test_unknown_route_404_and_wrong_method_405(parts: Any) -> None:
    gateway, *_ = parts
    assert (await gateway.decide(req("/nowhere"), "proxy")).status == 404
    assert (await gateway.decide(req(method="DELETE"), "proxy")).status == 405


@pytest.mark.parametrize("method", ["TRACE", "TRACK", "CONNECT", "PROPFIND", "get"])
async def test_trace_and_unknown_methods_refused_on_every_route(parts: Any, method: str) -> None:
    gateway, auth, _, _ = parts
    decision = await gateway.decide(req("/public/x", method=method), "proxy")
    assert (decision.allowed, decision.status) == (False, 405)
    assert auth.calls == 0


async def test_rate_limited_before_authentication(parts: Any) -> None:
    gateway, auth, limiter, _ = parts
    limiter.deny_policies.add("ip")
    decision = await gateway.decide(req(x_test_token="alice:read"), "proxy")
    assert (decision.status, decision.code) == (429, "rate_limited")
    assert auth.calls == 0
    assert ("Retry-After", "7") in decision.headers


async def test_post_auth_route_limit(parts: Any) -> None:
    gateway, _, limiter, _ = parts
    limiter.deny_policies.add("route:api")
    decision = await gateway.decide(req(x_test_token="alice:read"), "proxy")
    assert decision.status == 429
    assert decision.reason == "rate_limited:route:api"


async def test_any_unexpected_error_denies(parts: Any) -> None:
    gateway, auth, _, observer = parts
    auth.explode = True
    decision = await gateway.decide(req(x_test_token="alice:read"), "proxy")
    assert not decision.allowed
    assert decision.status == 500
    assert b"boom" not in decision.problem_body()
    assert observer.events[-1][1].allowed is False


async def test_public_route_is_anonymous(parts: Any) -> None:
    gateway, auth, _, _ = parts
    decision = await gateway.decide(req("/public/status"), "proxy")
    assert decision.allowed
    assert dict(decision.upstream_headers)["X-Bastion-Credential"] == "anonymous"
    assert auth.calls == 0


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"x_big": "a" * 20000}, 431, "headers_too_large"),
        ({"authorization": "Bearer " + "a" * 9000}, 431, "headers_too_large"),
        ({"content_length": "99999999999"}, 413, "payload_too_large"),
        ({"content_length": "-1"}, 400, "invalid_request"),
        ({"content_length": "12abc"}, 400, "invalid_request"),
        ({"content_length": "4", "transfer_encoding": "chunked"}, 400, "conflicting_framing"),
        ({"transfer_encoding": "gzip, chunked"}, 400, "unsupported_transfer_coding"),
        ({"transfer_encoding": "chunked, chunked"}, 400, "unsupported_transfer_coding"),
    ],
)
async def test_input_guard(parts: Any, headers: dict[str, str], status: int, code: str) -> None:
    gateway, auth, _, _ = parts
    decision = await gateway.decide(req(x_test_token="alice:read", **headers), "proxy")
    assert decision.status == status
    assert code in (decision.code, decision.reason)  # the public code, or the audit reason
    assert auth.calls == 0


async def test_invalid_path_is_400(parts: Any) -> None:
    gateway, *_ = parts
    decision = await gateway.decide(req("/public/../api/items"), "proxy")
    assert (decision.status, decision.code) == (400, "invalid_path")


async def test_subject_cannot_inject_headers(parts: Any) -> None:
    gateway, *_ = parts
    decision = await gateway.decide(req(x_test_token="eve\r\nX-Admin=1:read"), "proxy")
    subject = dict(decision.upstream_headers)["X-Bastion-Subject"]
    assert "\r" not in subject
    assert "\n" not in subject
    assert subject == "eve%0D%0AX-Admin=1"


async def test_a_space_inside_a_scope_or_role_cannot_split_it_in_two(parts: Any) -> None:
    # An identity provider's group "viewer admin", or a token's scp ["read write"]: the
    # headers are space-separated lists, so the space is encoded, never passed as is.
    gateway, *_ = parts
    token = "alice:read write,read:viewer admin,100% user"
    headers = dict((await gateway.decide(req(x_test_token=token), "proxy")).upstream_headers)
    assert headers["X-Bastion-Scopes"] == "read read%20write"
    assert headers["X-Bastion-Roles"] == "100%25%20user viewer%20admin"
    assert "admin" not in headers["X-Bastion-Roles"].split(" ")


def test_header_safe_encodes_non_ascii() -> None:
    assert header_safe("plain value") == "plain value"
    assert header_safe("café") == "caf%C3%A9"
    assert header_safe("100%") == "100%25"


def test_identity_header_detection(parts: Any) -> None:
    gateway, *_ = parts
    assert gateway.is_identity_header("X-Bastion-Subject")
    assert gateway.is_identity_header("x-bastion-anything")
    assert not gateway.is_identity_header("x-forwarded-for")


def test_route_with_method_lacking_authenticator_is_refused() -> None:
    config = parse_config({"routes": [{"name": "r", "auth": ["basic"]}]})
    with pytest.raises(ValueError, match="basic"):
        Gateway(config, authenticators={}, limiter=FakeLimiter(), observer=FakeObserver())


@pytest.mark.parametrize(
    ("upgrade", "refused"),
    [("websocket", True), ("WebSocket", True), ("foo, websocket", True), ("h2c", False)],
)
async def test_a_websocket_handshake_needs_a_route_that_accepts_them(
    parts: Any, upgrade: str, refused: bool
) -> None:
    gateway, _, _, _ = parts
    decision = await gateway.decide(req(x_test_token="alice:read", upgrade=upgrade), "proxy")
    assert decision.allowed is not refused
    if refused:
        assert (decision.status, decision.reason) == (403, "websocket_not_allowed")


async def test_recheck_verifies_again_without_counting(parts: Any) -> None:
    gateway, auth, limiter, observer = parts
    route = gateway.routes.routes[-1]  # api: scope read
    handshake = await gateway.decide(req(x_test_token="alice:read"), "proxy")
    assert handshake.principal is not None
    hits, events, calls = len(limiter.hits), len(observer.events), auth.calls
    # Still valid: verified again (revocation is the method's answer), nothing counted.
    view = req(x_test_token="alice:read")
    assert await gateway.recheck(view, route, "proxy", handshake=handshake.principal) is None
    assert auth.calls == calls + 1
    assert (len(limiter.hits), len(observer.events)) == (hits, events)
    # Refused now (a scope taken away, a bad credential): the denial, observed, and no
    # failure counted against the account's throttle.
    for token, status in (("alice:write", 403), ("bad", 401)):
        denied = await gateway.recheck(
            req(x_test_token=token), route, "websocket", handshake=handshake.principal
        )
        assert denied is not None
        assert denied.status == status
        assert observer.events[-1][1] is denied
        assert observer.events[-1][2] == "websocket"
    assert limiter.failures == []
    auth.explode = True  # a bug or an unreachable dependency fails closed
    denied = await gateway.recheck(view, route, "proxy", handshake=handshake.principal)
    assert denied is not None
    assert denied.status == 500


async def test_recheck_refuses_past_expiry_whatever_the_verifier_says(parts: Any) -> None:
    gateway, auth, _, _ = parts
    route = gateway.routes.routes[-1]
    handshake = await gateway.decide(req(x_test_token="alice:read"), "proxy")
    assert handshake.principal is not None
    expired = dataclasses.replace(handshake.principal, expires_at=gateway.clock() - 1)
    calls = auth.calls
    view = req(x_test_token="alice:read")
    denied = await gateway.recheck(view, route, "proxy", handshake=expired)
    assert denied is not None
    assert (denied.status, denied.reason) == (401, "token_expired")
    assert auth.calls == calls  # not even asked: verification leeway does not extend it
    public = gateway.routes.routes[0]
    assert await gateway.recheck(req("/public"), public, "proxy", handshake=expired) is None


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example.com", True),
        ("HTTPS://APP.EXAMPLE.COM", True),  # origins compare case-insensitively
        ("https://evil.example", False),
        ("http://app.example.com", False),  # another scheme is another origin
        ("https://app.example.com:8443", False),
        (None, True),  # not a browser: no ambient credentials to hijack
    ],
)
async def test_a_websocket_route_may_name_the_origins_allowed_to_open_it(
    origin: str | None, allowed: bool
) -> None:
    route = {
        "name": "live",
        "path_prefix": "/live",
        "auth": ["jwt"],
        "websocket": True,
        "websocket_origins": ["https://app.example.com"],
    }
    gateway = Gateway(
        parse_config({"routes": [route]}),
        authenticators={AuthMethod.JWT: TokenAuthenticator()},
        limiter=FakeLimiter(),
        observer=FakeObserver(),
    )
    headers = {"x_test_token": "alice:read", "upgrade": "websocket"}
    if origin is not None:
        headers["origin"] = origin
    decision = await gateway.decide(req("/live/feed", **headers), "proxy")
    assert decision.allowed is allowed
    if not allowed:
        assert (decision.status, decision.reason) == (403, "origin_not_allowed")
    # A plain request is not a handshake: its Origin is not this check's business.
    plain = await gateway.decide(req("/live/feed", x_test_token="alice:read", origin="x"), "p")
    assert plain.allowed


class AmbientAuthenticator(TokenAuthenticator):
    """The fake token read as HTTP Basic: a credential browsers send by themselves."""

    method = AuthMethod.BASIC

    async def authenticate(self, request: RequestView) -> Principal:
        found = await super().authenticate(request)
        return dataclasses.replace(found, credential=CredentialType.BASIC)


@pytest.mark.parametrize(
    ("origin", "method", "listed", "allowed"),
    [
        ("https://api.example.com", AuthMethod.BASIC, None, True),  # the page of the API
        ("http://API.example.com", AuthMethod.BASIC, None, True),  # hosts: no case
        ("https://evil.example", AuthMethod.BASIC, None, False),  # hijacking
        ("https://api.example.com:8443", AuthMethod.BASIC, None, False),  # another port
        ("https://api.example.com.evil.example", AuthMethod.BASIC, None, False),
        ("https://api.example.com/", AuthMethod.BASIC, None, False),  # not an Origin
        ("null", AuthMethod.BASIC, None, False),  # sandboxed frames, file: pages
        (None, AuthMethod.BASIC, None, True),  # not a browser
        ("https://evil.example", AuthMethod.JWT, None, True),  # a token is not ambient
        ("https://evil.example", AuthMethod.BASIC, ["https://evil.example"], True),
    ],
)
async def test_basic_on_a_websocket_is_same_origin_unless_origins_are_listed(
    origin: str | None, method: AuthMethod, listed: list[str] | None, allowed: bool
) -> None:
    route: dict[str, Any] = {
        "name": "live",
        "path_prefix": "/live",
        "auth": [method.value],
        "websocket": True,
    }
    if listed is not None:
        route["websocket_origins"] = listed
    auth = AmbientAuthenticator() if method is AuthMethod.BASIC else TokenAuthenticator()
    gateway = Gateway(
        parse_config({"routes": [route]}),
        authenticators={method: auth},
        limiter=FakeLimiter(),
        observer=FakeObserver(),
    )
    headers = {"x_test_token": "alice:read", "upgrade": "websocket"}
    if origin is not None:
        headers["origin"] = origin
    view = dataclasses.replace(req("/live/feed", **headers), host="api.example.com")
    decision = await gateway.decide(view, "proxy")
    assert decision.allowed is allowed
    if not allowed:
        assert (decision.status, decision.reason) == (403, "origin_not_allowed")
    # A plain request with the same credential and Origin is not a handshake.
    no_upgrade = {k: v for k, v in view.headers.items() if k != "upgrade"}
    plain = dataclasses.replace(view, headers=no_upgrade)
    assert (await gateway.decide(plain, "proxy")).allowed


def test_websocket_capacity_counts_clients_and_gives_places_back() -> None:
    capacity = Capacity(WebSocketConfig(max_connections=5, max_per_client=2), 64)
    a = [capacity.take("203.0.113.9"), capacity.take("203.0.113.9")]
    with pytest.raises(RateLimited):
        capacity.take("203.0.113.9")
    # An IPv6 client counts by its /64: another address of the same network is the same.
    v6 = [capacity.take("2001:db8::1"), capacity.take("2001:db8::2")]
    with pytest.raises(RateLimited):
        capacity.take("2001:db8::3")
    other = capacity.take("198.51.100.1")
    with pytest.raises(Unavailable):
        capacity.take("198.51.100.2")  # the worker is full
    capacity.give_back(a[0])
    assert capacity.take("198.51.100.2") == "198.51.100.2"
    for held in (a[1], *v6, other, "198.51.100.2"):
        capacity.give_back(held)
    assert capacity.total == 0
    assert capacity.take("203.0.113.9") == "203.0.113.9"
