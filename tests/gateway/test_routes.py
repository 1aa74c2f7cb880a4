from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.config import RouteConfig
from bastion.errors import BadRequest
from bastion.gateway._headers import AmbiguousRequest
from bastion.gateway.routes import (
    InvalidPath,
    RouteTable,
    bare_host,
    loose_reading,
    normalize_path,
)


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
    # DNS and nginx's server_name read a final dot as the same name.
    assert bare_host("API.example.com.:443") == "api.example.com"
    assert bare_host("api.example.com.") == "api.example.com"


def test_a_host_with_a_final_dot_takes_its_route() -> None:
    t = table(
        {"name": "admin", "host": "admin.example.com", "auth": ["basic"]},
        {"name": "rest", "public": True},
    )
    assert t.match("GET", "admin.example.com.", "/x")[0].name == "admin"  # type: ignore[union-attr]


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
        "/public/..;/admin",  # Tomcat and Spring drop ";" parameters: /admin to them
        "/public/%2e%2e;jsessionid=1/admin",
        "/public/.;x/admin",
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


GUARDED = (
    {"name": "admin", "path_prefix": "/admin", "auth": ["basic"]},
    {"name": "public", "path_prefix": "/public", "public": True},
    {"name": "rest", "path_prefix": "/", "public": True},
)


@pytest.mark.parametrize(
    "path",
    [
        "/ADMIN/users",  # Express and ASP.NET match paths case-insensitively
        "/Admin",
        "//admin",  # many servers merge slashes
        "/admin;x",  # Tomcat and Spring drop ";" parameters
        "/admin;/x",
        "/;/admin",
        "/\uff41dmin",  # fullwidth: IIS's best fit folds it to "admin"
    ],
)
def test_a_path_that_reads_as_a_guarded_route_is_ambiguous(path: str) -> None:
    """Readings an upstream may apply that take another route than the path as sent."""
    with pytest.raises(AmbiguousRequest):
        table(*GUARDED).match("GET", "", path)


def test_readings_that_agree_are_matched_as_usual() -> None:
    t = table(*GUARDED)
    assert t.match("GET", "", "/admin/x")[0].name == "admin"  # type: ignore[union-attr]
    assert t.match("GET", "", "/Other/X")[0].name == "rest"  # type: ignore[union-attr]
    assert t.match("GET", "", "/other//x;y")[0].name == "rest"  # type: ignore[union-attr]
    assert t.match("GET", "", "/administrator")[0].name == "rest"  # type: ignore[union-attr]


def test_a_prefix_in_capitals_guards_every_spelling() -> None:
    t = table({"name": "admin", "path_prefix": "/Admin", "auth": ["basic"]}, GUARDED[2])
    assert t.match("GET", "", "/Admin/x")[0].name == "admin"  # type: ignore[union-attr]
    with pytest.raises(AmbiguousRequest):
        t.match("GET", "", "/admin/x")  # served by a case-insensitive upstream


def test_loose_reading() -> None:
    assert loose_reading("/A;b/C//d/") == "/a/c/d/"
    assert loose_reading("/\uff58") == "/x"
    with pytest.raises(AmbiguousRequest):
        loose_reading("/public/\uff0e\uff0e/admin")  # fullwidth dots: ".." once folded
    with pytest.raises(AmbiguousRequest):
        loose_reading("/a\uff3cb")  # a fullwidth backslash


def test_an_ambiguous_answer_is_remembered_and_still_refused() -> None:
    t = table(*GUARDED)
    for _ in range(3):
        with pytest.raises(AmbiguousRequest):
            t.match("GET", "", "//admin")


@given(st.text(max_size=120))
def test_matching_never_raises_anything_but_bad_request(raw: str) -> None:
    t = table(*GUARDED)
    try:
        t.match("GET", "", normalize_path("/" + raw))
    except BadRequest:
        return
