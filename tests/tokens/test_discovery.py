"""Issuers configured by discovery URL, against real HTTP servers on 127.0.0.1: the
document and the key set are served and counted, not mocked."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bastion.config import IssuerConfig
from bastion.credentials.bearer import BearerAuthenticator
from bastion.errors import InvalidToken, Unavailable
from bastion.model import RequestView
from bastion.tokens import JwtVerifier
from bastion.tokens.discovery import DiscoveryError, DiscoveryKeySource, parse_discovery
from tests.tokens._helpers import ISS, PUBLIC_JWKS, FakeClock, claims, es256, issuer

DOC_PATH = "/.well-known/openid-configuration"


@dataclass
class IdpServer:
    """A real HTTP server answering each path from a table; counts requests per path."""

    routes: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    base: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve_json(self, path: str, doc: Any, status: int = 200) -> None:
        self.routes[path] = (status, "application/json", json.dumps(doc).encode())

    def discovery(self, *, issuer: str = ISS, jwks_uri: str | None = None) -> None:
        doc = {"issuer": issuer, "jwks_uri": jwks_uri or self.base + "/jwks"}
        doc["token_endpoint"] = self.base + "/token"
        self.serve_json(DOC_PATH, doc)

    @property
    def url(self) -> str:
        return self.base + DOC_PATH


@contextmanager
def idp_server(host: str = "127.0.0.1") -> Iterator[IdpServer]:
    state = IdpServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.hits[self.path] = state.hits.get(self.path, 0) + 1
            status, ctype, body = state.routes.get(self.path, (404, "text/plain", b"no"))
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            if status in (301, 302):
                self.send_header("location", state.base + "/elsewhere")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.base = f"http://{host}:{server.server_address[1]}"
    state.serve_json("/jwks", {"keys": PUBLIC_JWKS})
    state.discovery()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def idp() -> Iterator[IdpServer]:
    with idp_server() as state:
        yield state


def discovered(url: str, **overrides: Any) -> IssuerConfig:
    return issuer(**{"keys": None, "discovery_url": url, **overrides})


def make(url: str, clock: FakeClock, client: httpx.AsyncClient, **overrides: Any) -> JwtVerifier:
    return JwtVerifier.from_config(discovered(url, **overrides), http_client=client, clock=clock)


async def unavailable(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(Unavailable) as info:
        await verifier.verify(token)
    return info.value.reason


async def test_discovers_jwks_once_then_verifies_like_jwks_url(
    idp: IdpServer, clock: FakeClock, client: httpx.AsyncClient
) -> None:
    v = make(idp.url, clock, client)
    assert isinstance(v.keys, DiscoveryKeySource)
    for _ in range(5):
        principal = await v.verify(es256())
        assert principal.subject == "user-42"
        assert principal.issuer == ISS
        assert principal.client_id == "cli"
        assert principal.scopes == {"orders:read", "orders:write"}
    assert idp.hits == {DOC_PATH: 1, "/jwks": 1}
    clock.advance(301)  # the key set expires; the document is not read again
    await v.verify(es256(claims(clock.now)))
    assert idp.hits == {DOC_PATH: 1, "/jwks": 2}


async def test_concurrent_first_use_fetches_the_document_once(
    idp: IdpServer, clock: FakeClock, client: httpx.AsyncClient
) -> None:
    v = make(idp.url, clock, client)
    results = await asyncio.gather(*(v.verify(es256()) for _ in range(20)))
    assert {p.subject for p in results} == {"user-42"}
    assert idp.hits == {DOC_PATH: 1, "/jwks": 1}


@pytest.mark.parametrize(
    "named",
    [ISS + "/", ISS.upper(), "https://evil.example", "", None, 42, [ISS]],
)
async def test_issuer_mismatch_fails_closed_and_says_so(
    idp: IdpServer,
    clock: FakeClock,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    named: Any,
) -> None:
    idp.serve_json(DOC_PATH, {"issuer": named, "jwks_uri": idp.base + "/jwks"})
    v = make(idp.url, clock, client)
    with caplog.at_level(logging.ERROR, logger="bastion.tokens.discovery"):
        assert await unavailable(v, es256()) == "discovery_unavailable"
    assert "is not the configured 'https://issuer.example'" in caplog.text
    assert "/jwks" not in idp.hits  # keys of an unpinned document are never fetched


async def test_discovery_down_retries_at_the_rate_bound_then_recovers(
    idp: IdpServer, clock: FakeClock, client: httpx.AsyncClient
) -> None:
    idp.serve_json(DOC_PATH, {"error": "down"}, status=503)
    v = make(idp.url, clock, client, jwks_min_refresh_seconds=30)
    for _ in range(10):
        assert await unavailable(v, es256()) == "discovery_unavailable"
    assert idp.hits[DOC_PATH] == 1
    clock.advance(29)
    assert await unavailable(v, es256(claims(clock.now))) == "discovery_unavailable"
    assert idp.hits[DOC_PATH] == 1
    idp.discovery()  # the IdP is back: the next attempt after the bound succeeds
    clock.advance(1)
    assert (await v.verify(es256(claims(clock.now)))).subject == "user-42"
    assert idp.hits == {DOC_PATH: 2, "/jwks": 1}


async def test_connection_refused_fails_closed(
    clock: FakeClock, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with idp_server() as gone:
        url = gone.url
    v = make(url, clock, client)
    with caplog.at_level(logging.WARNING, logger="bastion.tokens.discovery"):
        assert await unavailable(v, es256()) == "discovery_unavailable"
    assert "ConnectError" in caplog.text
    assert "failing closed" in caplog.text


async def test_jwks_uri_on_another_host_is_followed(
    idp: IdpServer, clock: FakeClock, client: httpx.AsyncClient
) -> None:
    # OIDC does not require jwks_uri to share the document's origin (Google's does not).
    with idp_server(host="localhost") as keys_host:
        idp.serve_json("/jwks", {"keys": []})  # not this one
        idp.discovery(jwks_uri=keys_host.base + "/jwks")
        v = make(idp.url, clock, client)
        assert (await v.verify(es256())).subject == "user-42"
        assert keys_host.hits == {"/jwks": 1}
        assert "/jwks" not in idp.hits


async def test_discovered_jwks_down_fails_closed_until_it_answers(
    idp: IdpServer, clock: FakeClock, client: httpx.AsyncClient
) -> None:
    idp.serve_json("/jwks", {"error": "down"}, status=500)
    v = make(idp.url, clock, client)
    with pytest.raises(Unavailable) as info:
        await v.verify(es256())
    assert info.value.reason == "jwks_unavailable"
    idp.serve_json("/jwks", {"keys": PUBLIC_JWKS})
    clock.advance(30)
    assert (await v.verify(es256(claims(clock.now)))).subject == "user-42"
    assert idp.hits == {DOC_PATH: 1, "/jwks": 2}


@pytest.mark.parametrize(
    ("status", "ctype", "body"),
    [
        (200, "text/html", b"<html>"),
        (200, "application/json", b"not json"),
        (200, "application/json", b"[]"),
        (200, "application/json", json.dumps({"issuer": ISS}).encode()),
        (200, "application/json", json.dumps({"issuer": ISS, "jwks_uri": "/jwks"}).encode()),
        (200, "application/json", b'{"issuer": "' + ISS.encode() + b'", "pad": "' + b"x" * 300_000),
        (302, "application/json", b""),
        (404, "application/json", b"{}"),
    ],
)
async def test_unusable_documents_fail_closed(
    idp: IdpServer,
    clock: FakeClock,
    client: httpx.AsyncClient,
    status: int,
    ctype: str,
    body: bytes,
) -> None:
    idp.routes[DOC_PATH] = (status, ctype, body)
    v = make(idp.url, clock, client)
    assert await unavailable(v, es256()) == "discovery_unavailable"
    assert "/elsewhere" not in idp.hits  # redirects are not followed
    assert "/jwks" not in idp.hits


async def test_document_that_never_arrives_times_out(clock: FakeClock) -> None:
    writers: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        writers.append(w)

    hung = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = hung.sockets[0].getsockname()[1]
    async with hung, httpx.AsyncClient() as c:
        source = DiscoveryKeySource(f"http://127.0.0.1:{port}/", ISS, client=c, timeout=0.3)
        with pytest.raises(Unavailable):
            await source.key_index(None)
        assert source.fetches == 1
        assert source.jwks is None
        for w in writers:
            w.close()
            await w.wait_closed()


def test_parse_discovery_refuses_downgrade_and_credentials() -> None:
    def doc(jwks_uri: Any) -> bytes:
        return json.dumps({"issuer": ISS, "jwks_uri": jwks_uri}).encode()

    https_doc = "https://issuer.example/.well-known/openid-configuration"
    assert parse_discovery(doc("https://keys.example/k"), issuer=ISS, discovery_url=https_doc)
    for bad in (
        "http://keys.example/k",  # https -> http downgrade
        "https://user:pw@keys.example/k",
        "file:///etc/passwd",
        "https:///no-host",
        "https://keys.example/" + "k" * 3000,
        ["https://keys.example/k"],
        "",
    ):
        with pytest.raises(DiscoveryError):
            parse_discovery(doc(bad), issuer=ISS, discovery_url=https_doc)
    # A plain-http document (a lab, a loopback IdP) may point at a plain-http key set.
    assert parse_discovery(doc("http://127.0.0.1:1/k"), issuer=ISS, discovery_url="http://x/")


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_parse_discovery_never_raises_anything_else(raw: bytes) -> None:
    try:
        result = parse_discovery(raw, issuer=ISS, discovery_url="https://issuer.example/d")
    except DiscoveryError:
        return
    assert result.startswith("https://")


async def test_subject_claim_maps_the_principal(
    idp: IdpServer, clock: FakeClock, client: httpx.AsyncClient
) -> None:
    v = make(idp.url, clock, client, subject_claim="oid", roles_claim="realm_access.roles")
    token = es256(claims(oid="0f3c-oid", roles=None, realm_access={"roles": ["reporter"]}))
    principal = await v.verify(token)
    assert principal.subject == "0f3c-oid"
    assert principal.roles == {"reporter"}
    with pytest.raises(InvalidToken) as info:
        await v.verify(es256(claims()))  # no ``oid``: a ``sub`` does not stand in for it
    assert info.value.reason == "missing_sub"


def test_config_requires_exactly_one_key_source() -> None:
    url = "https://issuer.example/.well-known/openid-configuration"
    assert discovered(url).discovery_url is not None
    for extra in ({"keys": PUBLIC_JWKS}, {"jwks_url": "https://issuer.example/jwks"}):
        with pytest.raises(ValidationError, match="exactly one of jwks_url, discovery_url"):
            discovered(url, **extra)
    with pytest.raises(ValidationError):
        discovered("not a url")
    with pytest.raises(ValidationError):
        discovered(url, subject_claim="a b")


async def test_bearer_authenticator_over_a_discovered_issuer(
    idp: IdpServer, clock: FakeClock
) -> None:
    bearer = BearerAuthenticator.from_config([discovered(idp.url)], clock=clock)
    try:
        headers = {"authorization": f"Bearer {es256()}"}
        request = RequestView(method="GET", path="/", headers=headers)
        assert (await bearer.authenticate(request)).subject == "user-42"
    finally:
        await bearer.aclose()
    assert idp.hits == {DOC_PATH: 1, "/jwks": 1}
