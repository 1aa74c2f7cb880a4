from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.config import RouteConfig
from bastion.errors import BadRequest
from bastion.gateway.routes import InvalidPath, RouteTable, bare_host, normalize_path


def table(*routes: dict[str, object]) -> RouteTable:
    return RouteTable([RouteConfig.model_validate(r) for r in routes])


def test_prefix_matches_on_segment_boundary() -> None:
    t = table({"name": "api", "path_prefix": "/api", "auth": ["jwt"]})
    assert t.match("GET", "", "/api")[0] is not None
    assert t.match("GET", "", "/api/users")[0] is not None
    assert t.match("GET", "", "/apix") == (None, False)
    assert t.match("GET", "", "/") == (None, False)


def test_first_matching_route_wins_in_config_order() -> None:
    t = table(
        {"name": "admin", "path_prefix": "/api/admin", "auth": ["basic"]},
        {"name": "api", "path_prefix": "/api", "auth": ["jwt"]},
    )
    assert t.match("GET", "", "/api/admin/x")[0].name == "admin"  # type: ignore[union-attr]
    assert t.match("GET", "", "/api/other")[0].name == "api"  # type: ignore[union-attr]


def test_methods_and_head_follows_get() -> None:
    t = table({"name": "r", "methods": ["get"], "auth": ["jwt"]})
    assert t.match("HEAD", "", "/x")[0] is not None
    route, wrong_method = t.match("POST", "", "/x")
    assert route is None
    assert wrong_method is True


def test_host_exact_and_wildcard_ignore_port_and_case() -> None:
    t = table(
        {"name": "a", "host": "api.example.com", "auth": ["jwt"]},
        {"name": "w", "host": "*.example.org", "auth": ["jwt"]},
    )
    assert t.match("GET", "API.example.com:8443", "/")[0].name == "a"  # type: ignore[union-attr]
    assert t.match("GET", "x.example.org", "/")[0].name == "w"  # type: ignore[union-attr]
    assert t.match("GET", "example.org", "/")[0] is None
    assert t.match("GET", "evil.com", "/")[0] is None


def test_strip_prefix() -> None:
    t = table({"name": "a", "path_prefix": "/svc", "strip_prefix": True, "auth": ["jwt"]})
    route = t.routes[0]
    assert route.upstream_path("/svc/users") == "/users"
    assert route.upstream_path("/svc") == "/"


def test_bare_host() -> None:
    assert bare_host("[::1]:8080") == "[::1]"
    assert bare_host("Example.COM:80") == "example.com"
    assert bare_host("example.com") == "example.com"


@pytest.mark.parametrize(
    "raw",
    [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/a/./b",
        "/a%2fb",
        "/a%5cb",
        "/a\\b",
        "/a%00b",
        "/a%0d%0aX-Injected:1",
        "/%ff%fe",
        "/api/%zz",  # not an escape: each component guesses differently
        "/api/100%",
        "/%2561dmin",  # %61 once decoded: "admin" to an upstream that decodes twice
        "/public/%252e%252e/admin",
        "relative",
        "",
    ],
)
def test_confusing_paths_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPath):
        normalize_path(raw)


def test_normal_paths_are_decoded() -> None:
    assert normalize_path("/caf%C3%A9/a%20b") == "/café/a b"
    assert normalize_path("/discount/50%25") == "/discount/50%"  # a literal percent sign
    assert normalize_path("/a//b") == "/a//b"


@given(st.text(max_size=200))
def test_normalize_never_raises_anything_but_bad_request(raw: str) -> None:
    try:
        result = normalize_path(raw)
    except BadRequest:
        return
    assert result.startswith("/")
    assert ".." not in result.split("/")
