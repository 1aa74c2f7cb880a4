"""The scanner's parsers and helpers, on their own (property tests for untrusted input)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.scan import (
    IdentityError,
    Severity,
    SpecError,
    _jwt,
    _websocket,
    parse_auth,
    parse_login,
)
from bastion.scan._canary import Canary
from bastion.scan._identity import json_path, token_from
from bastion.scan._openapi import load_spec, parse_endpoint_list, parse_text
from bastion.scan._redact import MASK, Redactor
from bastion.scan._target import Exchange
from bastion.scan._wordlist import DEFAULT_SECRETS, expand
from bastion.scan.checks import _enumeration


def test_redactor_masks_credentials_everywhere() -> None:
    red = Redactor(secrets=["hunter2-password"])
    assert red.header("Authorization", "Bearer abc.def.ghi") == f"Bearer {MASK}"
    assert red.header("Cookie", "a=1; b=2") == f"a={MASK}; b={MASK}"
    assert red.header("Set-Cookie", "sid=xyz; Path=/; HttpOnly") == f"sid={MASK}; Path=/; HttpOnly"
    assert red.header("Content-Type", "application/json") == "application/json"
    # A WebSocket key is random and public; "Sid" inside it is not a session id field.
    key = "jh3IluP4uSidNJK9hA2DNg=="
    assert red.header("Sec-WebSocket-Key", key) == key
    assert red.header("X-Other", "uSid=1") == f"uSid={MASK}"
    text = red.text('{"password": "p4ss", "token": "t0k", "role": "user", "n": 3} hunter2-password')
    assert "p4ss" not in text
    assert "t0k" not in text
    assert "hunter2-password" not in text
    assert '"role": "user"' in text
    assert red.text("/login?api_key=k3y&x=1") == f"/login?api_key={MASK}&x=1"
    jwt = _jwt.sign_hmac({"alg": "HS256"}, {"sub": "alice"}, b"k")
    assert jwt not in red.text(f"token {jwt} here")


def test_identities_parse() -> None:
    assert parse_auth("a=bearer:tok").headers() == {"Authorization": "Bearer tok"}
    assert parse_auth("k=apikey:X-Key:v").headers() == {"X-Key": "v"}
    assert parse_auth("c=cookie:sid=1").headers() == {"Cookie": "sid=1"}
    basic = parse_auth("b=basic:u:p:w").headers()["Authorization"]
    assert basic == "Basic dTpwOnc="
    name, recipe = parse_login("alice=/api/login?username=alice&password=a%26b&token=$.data.jwt")
    assert name == "alice"
    assert recipe.password == "a&b"
    assert recipe.username == "alice"
    assert recipe.token_path == "$.data.jwt"
    for bad in ("noequals", "a=", "a=basic:nocolon", "a=cookie:novalue"):
        with pytest.raises(IdentityError):
            parse_auth(bad)
    for bad in ("a=http://evil.test/login?u=1", "a=/login", "a=login?u=1"):
        with pytest.raises(IdentityError):
            parse_login(bad)


def test_tokens_are_found_in_login_replies() -> None:
    assert token_from({"access_token": "t"}, None) == "t"
    assert token_from({"data": {"token": "n"}}, None) == "n"
    assert token_from({"data": {"jwt": "j"}}, "$.data.jwt") == "j"
    assert token_from({"x": 1}, None) is None
    assert json_path({"a": [{"b": 2}]}, "a.0.b") == 2


def test_openapi3_with_refs_servers_and_public_operations() -> None:
    doc = {
        "openapi": "3.0.3",
        "servers": [{"url": "https://api.example.test/v1"}],
        "security": [{"bearer": []}],
        "components": {
            "schemas": {"User": {"type": "object", "properties": {"id": {}, "name": {}}}},
            "parameters": {"Id": {"name": "id", "in": "path", "schema": {"type": "integer"}}},
        },
        "paths": {
            "/users/{id}": {
                "parameters": [{"$ref": "#/components/parameters/Id"}],
                "get": {
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/User"}
                                }
                            }
                        }
                    }
                },
            },
            "/health": {"get": {"security": [], "responses": {}}},
            "/opt": {"get": {"security": [{}, {"bearer": []}], "responses": {}}},
        },
    }
    spec = load_spec(doc)
    user = spec.find("GET", "/v1/users/{id}")
    assert user is not None
    assert user.secured
    assert user.declared_fields() == {"id", "name"}
    assert user.path_params[0].type == "integer"
    assert user.fill({"id": 7}) == "/v1/users/7"
    assert not spec.find("GET", "/v1/health").secured  # type: ignore[union-attr]
    assert not spec.find("GET", "/v1/opt").secured  # type: ignore[union-attr]


def test_swagger2_body_and_query_keys() -> None:
    doc = {
        "swagger": "2.0",
        "basePath": "/api",
        "securityDefinitions": {"key": {"type": "apiKey", "in": "query", "name": "api_key"}},
        "paths": {
            "/login": {
                "post": {
                    "parameters": [
                        {
                            "name": "body",
                            "in": "body",
                            "schema": {"type": "object", "properties": {"user": {}, "pass": {}}},
                        }
                    ],
                    "responses": {"200": {"schema": {"type": "object"}}},
                }
            }
        },
    }
    spec = load_spec(doc)
    op = spec.operations[0]
    assert op.key == "POST /api/login"
    assert set(op.body_schema["properties"]) == {"user", "pass"}  # type: ignore[index]
    assert spec.security_schemes["key"]["in"] == "query"


def test_endpoint_lists() -> None:
    spec = parse_endpoint_list("GET /a\n/b  # comment\n\nPOST /c/{id}\n")
    assert [o.key for o in spec.operations] == ["GET /a", "GET /b", "POST /c/{id}"]
    with pytest.raises(SpecError):
        parse_endpoint_list("FETCH /a")


@given(st.text(max_size=300))
def test_any_text_is_a_spec_or_a_spec_error(text: str) -> None:
    with contextlib.suppress(SpecError):
        load_spec(parse_text(text))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)
_keys = st.sampled_from(
    [
        "paths",
        "components",
        "security",
        "servers",
        "parameters",
        "get",
        "$ref",
        "requestBody",
        "responses",
        "schema",
        "properties",
        "in",
        "name",
        "basePath",
        "securityDefinitions",
        "#/paths",
    ]
)


@given(
    st.dictionaries(_keys, _json | st.dictionaries(_keys, _json, max_size=4), max_size=6),
    st.sampled_from(["openapi", "swagger"]),
)
def test_hostile_documents_never_crash_the_loader(doc: dict[str, object], key: str) -> None:
    doc[key] = "3.0.0" if key == "openapi" else "2.0"
    with contextlib.suppress(SpecError):
        load_spec(parse_text(json.dumps(doc)))


@given(st.text(max_size=200))
def test_jwt_parser_never_raises(text: str) -> None:
    parsed = _jwt.parse(text)
    assert parsed is None or isinstance(parsed.header, dict)


def test_jwt_helpers_round_trip() -> None:
    token = _jwt.sign_hmac({"alg": "HS256", "typ": "JWT"}, {"sub": "a"}, b"secret")
    parsed = _jwt.parse(token)
    assert parsed is not None
    assert _jwt.hmac_matches(parsed, b"secret")
    assert not _jwt.hmac_matches(parsed, b"other")
    assert _jwt.parse(_jwt.unsigned({"alg": "none"}, {"a": 1})) is not None


def test_wordlist_is_ours_and_extends() -> None:
    assert {"secret", "changeme", "your-256-bit-secret", "supersecret"} <= set(DEFAULT_SECRETS)
    words = expand(("my-own",), ("acme",))
    assert words[0] == "my-own"
    assert "acme-secret" in words


def test_severity_parse_and_order() -> None:
    assert Severity.parse("High") is Severity.HIGH
    assert Severity.CRITICAL > Severity.HIGH > Severity.MEDIUM > Severity.LOW > Severity.INFO
    with pytest.raises(ValueError, match="unknown severity"):
        Severity.parse("severe")


async def test_canary_records_fetches() -> None:
    import httpx

    async with Canary() as canary:
        url = canary.publish("application/json", b'{"keys": []}', ".json")
        assert not canary.fetched(url)
        async with httpx.AsyncClient() as client:
            reply = await client.get(url)
            missing = await client.get(url + "x")
        assert reply.json() == {"keys": []}
        assert missing.status_code == 404
        assert canary.fetched(url)


def _ex(status: int, body: str, elapsed: float) -> Exchange:
    return Exchange(
        "POST", "http://t/login", {}, "", status, httpx.Headers(), body.encode(), elapsed
    )


def _prober(known: list[float], unknown: list[float], body: str = '{"error": "no"}') -> Any:
    times = {True: iter(known), False: iter(unknown)}

    async def probe(is_known: bool) -> Exchange | None:
        return _ex(401, body, next(times[is_known]))

    return probe


async def test_enumeration_timing_needs_a_repeated_median_gap() -> None:
    # A consistent gap over the bounded pairs: told apart by timing.
    slow = [0.40, 0.42, 0.38, 0.41, 0.45, 0.39]
    fast = [0.01, 0.02, 0.01, 0.03, 0.02, 0.01]
    verdict = await _enumeration.compare(_prober(slow, fast), [], refuse_ok=True)
    assert verdict is not None
    assert verdict.how == "timing"
    assert "6 interleaved pairs" in verdict.detail
    # One slow outlier on the known side is not enough: the first pairs show no hint.
    noisy = [0.40, 0.01, 0.02, 0.01, 0.02, 0.01]
    assert await _enumeration.compare(_prober(noisy, fast), [], refuse_ok=True) is None
    # A hint that the medians do not confirm is not a finding either.
    hint_only = [0.40, 0.42, 0.01, 0.02, 0.01, 0.02]
    assert await _enumeration.compare(_prober(hint_only, fast), [], refuse_ok=True) is None


async def test_enumeration_by_shape_masks_names_and_numbers() -> None:
    async def probe(is_known: bool) -> Exchange | None:
        name = "alice" if is_known else "alicex1234abcd"
        return _ex(401, f'{{"error": "bad password for {name}", "t": 17.5}}', 0.01)

    names = ["alice", "alicex1234abcd"]
    assert await _enumeration.compare(probe, names, refuse_ok=True) is None

    async def differs(is_known: bool) -> Exchange | None:
        return _ex(401 if is_known else 404, '{"error": "no"}', 0.01)

    verdict = await _enumeration.compare(differs, [], refuse_ok=True)
    assert verdict is not None
    assert verdict.how == "status"


def _schemas_in(node: Any) -> int:
    """Resolved schemas in a tree (the ``{}`` left where the budget ran out not counted)."""
    if not isinstance(node, dict) or not node:
        return 0
    props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
    return 1 + sum(_schemas_in(v) for v in props.values()) + _schemas_in(node.get("items"))


@pytest.mark.timeout(30)
def test_shared_schemas_referenced_on_every_level_do_not_expand_exponentially() -> None:
    # Nine components of 40 properties, each property a reference to the next level: 4 KB
    # of JSON that resolves to 40**8 schemas. Real APIs nest shared components like this
    # (an order's customer's address...), only less regularly.
    from bastion.scan._openapi import MAX_SCHEMA_NODES

    schemas = {
        f"S{level}": {
            "type": "object",
            "properties": {
                f"p{i}": {"$ref": f"#/components/schemas/S{level + 1}"} for i in range(40)
            },
        }
        for level in range(9)
    }
    schemas["S9"] = {"type": "string"}
    ref = {"$ref": "#/components/schemas/S0"}
    doc = {
        "openapi": "3.0.3",
        "components": {"schemas": schemas},
        "paths": {
            "/orders": {
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": ref}}},
                    "responses": {"200": {"content": {"application/json": {"schema": ref}}}},
                }
            }
        },
    }
    (op,) = load_spec(doc).operations
    assert 40 < _schemas_in(op.body_schema) <= MAX_SCHEMA_NODES
    assert 40 < _schemas_in(op.response_schema) <= MAX_SCHEMA_NODES
    assert set(op.body_schema["properties"]) == {f"p{i}" for i in range(40)}  # type: ignore[index]


def test_websocket_handshake_and_the_frames_a_server_sends() -> None:
    # RFC 6455 section 1.3's own example.
    assert _websocket.accept_for("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    shake = _websocket.handshake("https://app.example")
    assert shake.headers["Origin"] == "https://app.example"
    assert shake.accept == _websocket.accept_for(shake.headers["Sec-WebSocket-Key"])
    assert "Origin" not in _websocket.handshake(None).headers
    assert (
        _websocket.handshake(None).headers["Sec-WebSocket-Key"]
        != shake.headers["Sec-WebSocket-Key"]
    )
    ping = bytes([0x89, 0x00])
    text = bytes([0x81, 0x05]) + b"hello"
    long = bytes([0x82, 126]) + (300).to_bytes(2, "big") + b"x" * 300
    close = bytes([0x88, 0x02]) + (1008).to_bytes(2, "big")
    masked = bytes([0x81, 0x82, 1, 2, 3, 4]) + bytes([ord("o") ^ 1, ord("k") ^ 2])
    found = _websocket.frames(ping + text + long + close + masked)
    assert [(f.opcode, len(f.payload)) for f in found] == [(9, 0), (1, 5), (2, 300), (8, 2), (1, 2)]
    assert found[3].close_code == 1008
    assert found[4].payload == b"ok"
    assert found[1].close_code is None
    # The first thing said skips pings; a partial frame is not a frame.
    said = _websocket.first_words(ping + text)
    assert said is not None
    assert said.payload == b"hello"
    assert _websocket.frames(text[:4]) == []
    assert _websocket.first_words(bytes([0x82, 127]) + (2**40).to_bytes(8, "big")) is None
    assert _websocket.describe(text + close) == "[message] hello\n[close 1008]"
    assert _websocket.describe(b"") == "[no message within the probe's wait]"


@given(st.binary(max_size=300))
def test_websocket_frames_never_fail_on_garbage(data: bytes) -> None:
    for frame in _websocket.frames(data):
        assert len(frame.payload) <= len(data)
    _websocket.describe(data)
