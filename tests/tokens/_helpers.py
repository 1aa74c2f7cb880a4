"""Shared test helpers: a fake clock, test keys, issuer configs and a real JWKS server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from bastion.config import Algorithm, IssuerConfig
from bastion.tokens.keys import public_jwk
from bastion.tokens.mint import mint_jwt

NOW = 1_750_000_000.0
ISS = "https://issuer.example"
AUD = "api://orders"


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _ec() -> ECKey:
    return ECKey.generate_key("P-256", private=True)


EC_KEY = _ec()
EC_KEY_2 = _ec()
RSA_KEY = RSAKey.generate_key(2048, private=True)
ED_KEY = OKPKey.generate_key("Ed25519", private=True)
EC_KID = "ec-1"
RSA_KID = "rsa-1"
ED_KID = "ed-1"
HS_SECRET = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-0123"


def pub(key: Key, kid: str, alg: str) -> dict[str, Any]:
    jwk = public_jwk(key, alg)
    jwk["kid"] = kid
    return jwk


PUBLIC_JWKS = [
    pub(EC_KEY, EC_KID, "ES256"),
    pub(RSA_KEY, RSA_KID, "RS256"),
    pub(ED_KEY, ED_KID, "EdDSA"),
]


def issuer(**overrides: Any) -> IssuerConfig:
    data: dict[str, Any] = {
        "name": "main",
        "issuer": ISS,
        "audiences": [AUD],
        "keys": PUBLIC_JWKS,
    }
    data.update(overrides)
    return IssuerConfig.model_validate(data)


def hs_issuer(**overrides: Any) -> IssuerConfig:
    data: dict[str, Any] = {
        "name": "hs",
        "issuer": "https://hs.example",
        "audiences": [AUD],
        "hs256_secret": HS_SECRET,
        "algorithms": [Algorithm.HS256],
    }
    data.update(overrides)
    return IssuerConfig.model_validate(data)


def claims(now: float = NOW, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISS,
        "sub": "user-42",
        "aud": AUD,
        "iat": int(now),
        "exp": int(now) + 600,
        "jti": "jti-1",
        "scope": "orders:read orders:write",
        "roles": ["admin"],
        "client_id": "cli",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def es256(payload: dict[str, Any] | None = None, **headers: Any) -> str:
    return mint_jwt(EC_KEY, payload or claims(), "ES256", EC_KID, headers=headers)


@dataclass
class JwksServer:
    """A real HTTP server on 127.0.0.1 that serves a JWKS and counts requests."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/json"
    requests: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: Callable[[], None] = lambda: None

    def set_keys(self, keys: list[dict[str, Any]]) -> None:
        self.body = json.dumps({"keys": keys}).encode()
        self.status = 200
        self.content_type = "application/json"


@contextmanager
def jwks_server(keys: list[dict[str, Any]] | None = None) -> Iterator[JwksServer]:
    state = JwksServer()
    state.set_keys(keys if keys is not None else PUBLIC_JWKS)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.requests += 1
            self.send_response(state.status)
            self.send_header("content-type", state.content_type)
            self.send_header("content-length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            server.shutdown()
            server.server_close()
            thread.join(5)

    state.stop = stop
    try:
        yield state
    finally:
        stop()
