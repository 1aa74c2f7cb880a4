"""The input guard: override headers, header names and credentials in the query, decided
the same whichever front door asked (the adversarial suite drives them through each)."""

from __future__ import annotations

import pytest

from bastion.config import AuthMethod, parse_config
from bastion.credentials._query import credential_in_query
from bastion.gateway.core import Gateway
from bastion.model import RequestView
from tests.gateway._fakes import FakeLimiter, FakeObserver, TokenAuthenticator
from tests.gateway.test_core import CONFIG


@pytest.fixture
def gateway() -> Gateway:
    return Gateway(
        parse_config(CONFIG),
        authenticators={AuthMethod.JWT: TokenAuthenticator()},
        limiter=FakeLimiter(),
        observer=FakeObserver(),
    )


def req(path: str, method: str = "GET", query: str = "", **headers: str) -> RequestView:
    # A keyword's "_" is a "-" of the header's name, and its "__" a "_".
    h = {k.replace("__", "\0").replace("_", "-").replace("\0", "_"): v for k, v in headers.items()}
    h["x-test-token"] = "root:read:admin"
    return RequestView(method=method, path=path, query=query, headers=h, client_ip="203.0.113.9")


async def decide(gateway: Gateway, request: RequestView) -> tuple[int, str, str]:
    decision = await gateway.decide(request, "proxy")
    return decision.status, decision.code, decision.reason


@pytest.mark.parametrize(
    ("path", "method", "headers"),
    [
        ("/public/x", "POST", {"x_http_method_override": "GET"}),  # same route: fine
        ("/api/items", "GET", {"x_http_method_override": "POST"}),  # api takes GET and POST
        ("/api/items", "POST", {"x_original_url": "/api/other?x=1"}),
        ("/api/items", "GET", {"x_rewrite_url": "https://h.example/api/items"}),
    ],
)
async def test_overrides_that_take_the_same_route_pass(
    gateway: Gateway, path: str, method: str, headers: dict[str, str]
) -> None:
    assert (await decide(gateway, req(path, method, **headers)))[0] == 200


@pytest.mark.parametrize(
    ("path", "method", "headers", "reason"),
    [
        (
            "/api/items",
            "POST",
            {"x_http_method_override": "DELETE"},
            "override_takes_another_route",
        ),
        ("/api/items", "GET", {"x_method_override": "put"}, "override_takes_another_route"),
        ("/api/items", "GET", {"x_http_method": "GET, PATCH"}, "override_takes_another_route"),
        ("/api/items", "GET", {"x_http_method_override": "TRACE"}, "method_override_invalid"),
        ("/api/items", "GET", {"x_http_method_override": "FOO"}, "method_override_invalid"),
        ("/public/x", "GET", {"x_original_url": "/admin/users"}, "override_takes_another_route"),
        ("/public/x", "GET", {"x_rewrite_url": "http://h/admin"}, "override_takes_another_route"),
        ("/public/x", "GET", {"x_original_url": "/public/../admin"}, "url_override_invalid"),
        ("/public/x", "GET", {"x_original_url": "admin"}, "url_override_invalid"),
        ("/public/x", "GET", {"x_original_url": "//admin"}, "path_readings_differ"),
    ],
)
async def test_overrides_that_take_another_route_are_refused(
    gateway: Gateway, path: str, method: str, headers: dict[str, str], reason: str
) -> None:
    assert await decide(gateway, req(path, method, **headers)) == (400, "ambiguous_request", reason)


@pytest.mark.parametrize(
    "name",
    [
        "x__bastion__roles",
        "x__bastion__subject",
        "x__forwarded__for",
        "x__real__ip",
        "x__http__method__override",
        "x__original__url",
        "content__length",
        "transfer__encoding",
        "x__api__key",
        "x__request__id",
        "x__forwarded__proto",
        "x__bastion__assertion",
    ],
)
async def test_an_underscore_spelling_of_a_sensitive_header_is_refused(
    gateway: Gateway, name: str
) -> None:
    status, code, reason = await decide(gateway, req("/public/x", **{name: "1"}))
    assert (status, code, reason) == (400, "ambiguous_request", "underscore_header")


async def test_other_underscore_headers_pass(gateway: Gateway) -> None:
    assert (await decide(gateway, req("/public/x", x__custom__thing="1")))[0] == 200


@pytest.mark.parametrize(
    ("path", "query", "reason"),
    [
        ("/api/items", "access_token=eyJ", "token_in_query"),
        ("/api/items", "ACCESS_TOKEN=eyJ", "token_in_query"),
        ("/api/items", "access%5Ftoken=eyJ", "token_in_query"),
        ("/api/items", "a=1;access_token=eyJ", "token_in_query"),
        ("/api/items", "api_key=abc", "api_key_in_query"),
        ("/api/items", "x=bst_abcdef", "api_key_in_query"),  # an API key by its prefix
        ("/public/x", "access_token=eyJ", "token_in_query"),  # public routes too
        ("/public/x", "q=BST_abcdef", "api_key_in_query"),
    ],
)
async def test_credentials_in_the_query_are_refused_on_every_route(
    gateway: Gateway, path: str, query: str, reason: str
) -> None:
    status, _, got = await decide(gateway, req(path, query=query))
    assert (status, got) == (401, reason)


@pytest.mark.parametrize("query", ["page=2", "token=reset-link", "key=sort", "my_access_token_n=1"])
async def test_ordinary_queries_pass_where_the_route_takes_no_api_key(
    gateway: Gateway, query: str
) -> None:
    assert (await decide(gateway, req("/api/items", query=query)))[0] == 200


def test_generic_names_count_on_routes_that_take_api_keys() -> None:
    assert credential_in_query("token=abc", "bst_", generic=True) == "token"
    assert credential_in_query("KEY=abc", "bst_", generic=True) == "key"
    assert credential_in_query("token=abc", "bst_", generic=False) is None
    assert credential_in_query("", "bst_", generic=True) is None
