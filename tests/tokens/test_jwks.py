"""JwksCache against a real HTTP server on 127.0.0.1: requests are counted, not mocked."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from joserfc.jwk import ECKey

from bastion.errors import InvalidToken, Unavailable
from bastion.tokens import JwksCache, JwtVerifier, mint_jwt
from bastion.tokens.jwks import parse_jwks
from tests.tokens._helpers import (
    EC_KEY,
    EC_KEY_2,
    EC_KID,
    PUBLIC_JWKS,
    RSA_KEY,
    FakeClock,
    JwksServer,
    claims,
    es256,
    issuer,
    jwks_server,
    pub,
)


@pytest.fixture
def server() -> Iterator[JwksServer]:
    with jwks_server() as state:
        yield state


def make(server: JwksServer, clock: FakeClock, client: httpx.AsyncClient) -> JwtVerifier:
    config = issuer(keys=None, jwks_url=server.url, jwks_cache_seconds=300)
    return JwtVerifier.from_config(config, http_client=client, clock=clock)


async def reason(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as info:
        await verifier.verify(token)
    return info.value.reason


async def test_fetch_once_and_cache(
    server: JwksServer, clock: FakeClock, client: httpx.AsyncClient
) -> None:
    v = make(server, clock, client)
    for _ in range(5):
        assert (await v.verify(es256())).subject == "user-42"
    assert server.requests == 1
    clock.advance(301)  # jwks_cache_seconds elapsed: refetch once
    await v.verify(es256(claims(clock.now)))
    await v.verify(es256(claims(clock.now)))
    assert server.requests == 2


async def test_unknown_kid_refresh_is_rate_bound(
    server: JwksServer, clock: FakeClock, client: httpx.AsyncClient
) -> None:
    v = make(server, clock, client)
    await v.verify(es256())
    assert server.requests == 1
    # An attacker sends many random kids: at most one fetch per min_refresh (30 s).
    clock.advance(31)
    for i in range(50):
        token = mint_jwt(EC_KEY, claims(clock.now), "ES256", f"random-{i}")
        assert await reason(v, token) == "unknown_kid"
    assert server.requests == 2
    clock.advance(10)
    assert await reason(v, mint_jwt(EC_KEY, claims(clock.now), "ES256", "x")) == "unknown_kid"
    assert server.requests == 2
    clock.advance(21)
    assert await reason(v, mint_jwt(EC_KEY, claims(clock.now), "ES256", "y")) == "unknown_kid"
    assert server.requests == 3


async def test_rotation_new_kid_is_fetched(
    server: JwksServer, clock: FakeClock, client: httpx.AsyncClient
) -> None:
    v = make(server, clock, client)
    await v.verify(es256())
    clock.advance(31)
    server.set_keys([*PUBLIC_JWKS, pub(EC_KEY_2, "ec-2", "ES256")])
    token = mint_jwt(EC_KEY_2, claims(clock.now), "ES256", "ec-2")
    assert (await v.verify(token)).key_id == "ec-2"
    assert server.requests == 2


async def test_concurrent_refreshes_coalesce(
    server: JwksServer, clock: FakeClock, client: httpx.AsyncClient
) -> None:
    v = make(server, clock, client)
    results = await asyncio.gather(*(v.verify(es256()) for _ in range(20)))
    assert {p.subject for p in results} == {"user-42"}
    assert server.requests == 1


async def test_server_down_serves_stale_keys(
    server: JwksServer,
    clock: FakeClock,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    v = make(server, clock, client)
    await v.verify(es256())
    server.stop()  # connection refused from now on
    clock.advance(400)  # past jwks_cache_seconds
    with caplog.at_level(logging.WARNING, logger="bastion.tokens.jwks"):
        principal = await v.verify(es256(claims(clock.now)))
    assert principal.subject == "user-42"
    assert "serving the last good key set" in caplog.text
    assert "ConnectError" in caplog.text


@pytest.mark.parametrize(
    ("status", "ctype", "body"),
    [
        (500, "application/json", b'{"keys": []}'),
        (200, "text/html", b"<html>"),
        (200, "application/json", b"not json"),
        (200, "application/json", b'{"keys": "no"}'),
        (200, "application/json", b'{"keys": []}'),
        (302, "application/json", b""),
    ],
)
async def test_garbage_keeps_last_good(
    server: JwksServer,
    clock: FakeClock,
    client: httpx.AsyncClient,
    status: int,
    ctype: str,
    body: bytes,
) -> None:
    v = make(server, clock, client)
    await v.verify(es256())
    server.status, server.content_type, server.body = status, ctype, body
    clock.advance(400)
    assert (await v.verify(es256(claims(clock.now)))).subject == "user-42"
    assert server.requests == 2


async def test_never_fetched_fails_closed(
    server: JwksServer, clock: FakeClock, client: httpx.AsyncClient
) -> None:
    server.status = 503
    v = make(server, clock, client)
    with pytest.raises(Unavailable) as info:
        await v.verify(es256())
    assert info.value.reason == "jwks_unavailable"
    # Retries are rate-bound too: no second fetch inside min_refresh.
    with pytest.raises(Unavailable):
        await v.verify(es256())
    assert server.requests == 1
    server.set_keys(PUBLIC_JWKS)
    clock.advance(30)
    assert (await v.verify(es256(claims(clock.now)))).subject == "user-42"
    assert server.requests == 2


async def test_oversized_jwks_refused(
    server: JwksServer, clock: FakeClock, client: httpx.AsyncClient
) -> None:
    padding = [{"kty": "oct", "k": "A" * 1000}] * 600
    server.set_keys([*PUBLIC_JWKS, *padding])
    v = make(server, clock, client)
    with pytest.raises(Unavailable):
        await v.verify(es256())


async def test_server_that_never_answers_times_out(clock: FakeClock) -> None:
    writers: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        writers.append(w)

    hung = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = hung.sockets[0].getsockname()[1]
    async with hung, httpx.AsyncClient() as c:
        cache = JwksCache(f"http://127.0.0.1:{port}/", client=c, clock=clock, timeout=0.3)
        with pytest.raises(Unavailable):
            await cache.key_index(None)
        assert cache.fetches == 1
        for w in writers:
            w.close()
            await w.wait_closed()


async def test_owned_client_is_closed(server: JwksServer, clock: FakeClock) -> None:
    cache = JwksCache(server.url, clock=clock)
    assert len(await cache.key_index(EC_KID)) == 3
    await cache.aclose()


def test_jwks_with_unusable_keys_ignores_them() -> None:
    private = dict(EC_KEY.as_dict(private=True), kid="priv")
    enc = dict(pub(EC_KEY_2, "enc", "ES256"), use="enc")
    rs384 = dict(pub(RSA_KEY, "rs384", "RS256"), alg="RS384")
    weak = ECKey.generate_key("P-384", private=False).as_dict(private=False)
    doc = {
        "keys": [
            private,
            enc,
            rs384,
            weak,
            {"kty": "oct", "k": "AAAA"},
            "x",
            pub(EC_KEY, "ok", "ES256"),
        ]
    }
    index, skipped = parse_jwks(json.dumps(doc).encode())
    assert [k.kid for k in index.keys] == ["ok"]
    assert skipped == 6


async def test_compressed_body_refused(clock: FakeClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept-encoding"] == "identity"
        return httpx.Response(
            200,
            content=b"{}",
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as c:
        cache = JwksCache("https://issuer.example/jwks", client=c, clock=clock)
        with pytest.raises(Unavailable):
            await cache.key_index(None)


async def test_unexpected_error_is_contained(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("bug in a transport")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as c:
        cache = JwksCache("https://issuer.example/jwks", client=c, clock=clock)
        with caplog.at_level(logging.WARNING), pytest.raises(Unavailable):
            await cache.key_index(None)
    assert "unexpected RuntimeError" in caplog.text


async def test_skipped_keys_are_logged_without_key_material(
    server: JwksServer,
    clock: FakeClock,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    private = dict(EC_KEY_2.as_dict(private=True), kid="leaked")
    server.set_keys([*PUBLIC_JWKS, private])
    with caplog.at_level(logging.INFO, logger="bastion.tokens.jwks"):
        v = make(server, clock, client)
        await v.verify(es256())
    assert "skipped 1 unusable keys" in caplog.text
    assert str(private["d"]) not in caplog.text
    assert await reason(v, mint_jwt(EC_KEY_2, claims(), "ES256", "leaked")) == "unknown_kid"


def test_for_issuer_needs_a_jwks_url() -> None:
    with pytest.raises(ValueError, match="jwks_url"):
        JwksCache.for_issuer(issuer())
