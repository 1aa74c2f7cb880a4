"""A deliberately vulnerable API for the scanner's tests, with a fixed twin of every flaw.

``make_app(VulnConfig(vulnerable=True))`` has every flaw in SCANNER_CHECKS.md;
``vulnerable=False`` is the same API done right. ``alg`` picks how tokens are signed
(HS256 / RS256 / ES256) so key confusion and psychic signatures can be exercised, and
``skip_signature`` makes a variant that does not verify signatures at all.

Never expose this outside 127.0.0.1: it is insecure on purpose.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import tempfile
import threading
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bastion.scan._jwt import b64u, b64u_json, unb64u

API = "/api/v2"
WEAK_SECRET = b"secret"
USERS = [
    # id, username, password, email, role, api key
    (1, "alice", "wonderland", "alice@example.test", "user", None),
    (2, "bob", "builder", "bob@example.test", "user", None),
    (3, "admin", "root-of-trust", "admin@example.test", "admin", None),
    (4, "carol", "carol-pw-1", "carol@example.test", "user", "ck_live_carol_0123456789abcdef"),
]
# Text the target controls ends up in reports: it must come out escaped.
XSS = "<img src=x onerror=alert(1)>"
DISPLAY = {"bob": f"Bob {XSS}"}
SEARCH_REGEX = re.compile(r"^(\w+\s?)*$")  # catastrophic backtracking on "aaa…!"


@dataclass(frozen=True)
class VulnConfig:
    vulnerable: bool = True
    alg: str = "HS256"
    skip_signature: bool = False
    https: bool = False
    issuer: str = "vulnapi"
    audience: str | None = None  # an ``aud`` claim (for a gateway that requires one)
    hmac_key: bytes | None = None  # a strong HS256 key instead of the weak/random one


@dataclass
class State:
    """Everything the app remembers; tests read ``requests`` to count what reached it."""

    config: VulnConfig
    db: sqlite3.Connection
    hmac_key: bytes
    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey
    keys_dir: Path
    sessions: dict[str, int] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    pw_version: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    failures: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    hits: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    requests: list[tuple[float, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def user(self, **where: Any) -> dict[str, Any] | None:
        ((col, value),) = where.items()
        row = self.db.execute(f"SELECT * FROM users WHERE {col} = ?", (value,)).fetchone()  # noqa: S608
        return dict(row) if row else None


def _db() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.executescript(
        """
        CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT, password TEXT, email TEXT,
            role TEXT, api_key TEXT, display_name TEXT, password_hash TEXT, totp_secret TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, owner INTEGER, item TEXT, total REAL,
            archived INTEGER DEFAULT 0);
        CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, owner INTEGER, text TEXT);
        CREATE TABLE invoices (id INTEGER PRIMARY KEY, owner INTEGER, amount REAL, iban TEXT);
        CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT);
        CREATE TABLE jwt_keys (kid TEXT PRIMARY KEY, key TEXT);
        """
    )
    for uid, name, pw, email, role, key in USERS:
        db.execute(
            "INSERT INTO users VALUES (?,?,?,?,?,?,?,?,?)",
            (
                uid,
                name,
                pw,
                email,
                role,
                key,
                DISPLAY.get(name, name.title()),
                hashlib.sha256(pw.encode()).hexdigest(),
                base64.b32encode(name.encode() * 4).decode()[:16],
            ),
        )
    db.executemany(
        "INSERT INTO orders (id, owner, item, total) VALUES (?,?,?,?)",
        [(101, 1, "teapot", 20.0), (102, 1, "cups", 8.5), (201, 2, "hammer", 14.0)],
    )
    db.executemany(
        "INSERT INTO invoices VALUES (?,?,?,?)",
        [(501, 1, 20.0, "DE00 ALICE"), (601, 2, 14.0, "DE00 BOB")],
    )
    db.executemany(
        "INSERT INTO products VALUES (?,?,?)",
        [(i, f"product {i}", ("books", "tools", "toys")[i % 3]) for i in range(1, 31)],
    )
    db.commit()
    return db


def new_state(config: VulnConfig) -> State:
    keys_dir = Path(tempfile.mkdtemp(prefix="vulnapi-keys-"))
    key = config.hmac_key or (WEAK_SECRET if config.vulnerable else secrets.token_bytes(32))
    (keys_dir / "k1").write_bytes(key)
    state = State(
        config,
        _db(),
        key,
        rsa.generate_private_key(65537, 2048),
        ec.generate_private_key(ec.SECP256R1()),
        keys_dir,
    )
    state.db.execute("INSERT INTO jwt_keys VALUES ('k1', ?)", (key.decode("latin-1"),))
    state.db.commit()
    return state


# ------------------------------------------------------------------------ tokens
def issue(state: State, user: dict[str, Any], ttl: int = 3600) -> str:
    alg = state.config.alg
    now = int(time.time())
    header = {"alg": alg, "typ": "JWT", "kid": "k1"}
    payload = {
        "sub": user["username"],
        "uid": user["id"],
        "role": user["role"],
        "iat": now,
        "exp": now + ttl,
        "jti": secrets.token_hex(8),
        "iss": state.config.issuer,
        **({"aud": state.config.audience} if state.config.audience else {}),
        "pwv": state.pw_version[user["id"]],  # bumped by a password change
    }
    signing_input = f"{b64u_json(header)}.{b64u_json(payload)}".encode()
    if alg == "HS256":
        sig = hmac.new(state.hmac_key, signing_input, hashlib.sha256).digest()
    elif alg == "RS256":
        sig = state.rsa_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(state.ec_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input.decode()}.{b64u(sig)}"


def public_jwk(state: State) -> dict[str, str]:
    if state.config.alg == "ES256":
        nums = state.ec_key.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "kid": "k1",
            "alg": "ES256",
            "x": b64u(nums.x.to_bytes(32, "big")),
            "y": b64u(nums.y.to_bytes(32, "big")),
        }
    nums = state.rsa_key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "kid": "k1",
        "alg": "RS256",
        "e": b64u(nums.e.to_bytes(3, "big")),
        "n": b64u(nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")),
    }


def _rsa_ok(key: rsa.RSAPublicKey, signing_input: bytes, sig: bytes) -> bool:
    try:
        key.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
        return True
    except InvalidSignature:
        return False


def _hs_ok(key: bytes, signing_input: bytes, sig: bytes) -> bool:
    return hmac.compare_digest(hmac.new(key, signing_input, hashlib.sha256).digest(), sig)


def _fetch_loopback(url: str) -> bytes:
    # The vulnerable app fetches what the token says - but only on loopback, in tests.
    if urlsplit(url).hostname != "127.0.0.1":
        return b""
    return httpx.get(url, timeout=2).content


def _vuln_key_lookup(state: State, kid: str) -> bytes | None:
    try:  # string-built SQL: the kid injection
        row = state.db.execute(f"SELECT key FROM jwt_keys WHERE kid = '{kid}'").fetchone()  # noqa: S608
    except sqlite3.Error:
        row = None
    if row:
        return str(row[0]).encode("latin-1")
    # The key file is read as `sh -c "cat keys/$kid"`: path traversal (../../dev/null is an
    # empty key) and command injection (k1|printf X makes X the key).
    return _shell_cat(state.keys_dir, kid)


def _shell_cat(folder: Path, kid: str) -> bytes | None:
    """What ``sh -c "cat {folder}/{kid}"`` prints, emulated without a shell.

    Only ``;``, ``|`` and ``&&`` followed by ``printf WORD``, ``echo WORD`` or ``true`` are
    understood: enough for the scanner's probes, and nothing runs on the test machine.
    """
    parts = re.split(r"(\|\||&&|;|\|)", kid)
    try:
        out, ok = (folder / parts[0]).read_bytes(), True
    except (OSError, ValueError):
        out, ok = b"", False
    for sep, command in zip(parts[1::2], parts[2::2], strict=True):
        word = command.strip().split(" ", 1)
        if word[0] == "printf" and len(word) == 2:
            printed = word[1].encode()
        elif word[0] == "echo":
            printed = (word[1] if len(word) == 2 else "").encode() + b"\n"
        elif word[0] == "true":
            printed = b""
        else:
            printed, ok = b"", False
            continue
        if sep == "&&" and not ok:
            continue
        out, ok = (printed if sep == "|" else out + printed), True
    return out if ok else None


def verify_vulnerable(
    state: State, header: dict[str, Any], signing_input: bytes, sig: bytes
) -> bool:
    alg = str(header.get("alg", ""))
    if state.config.skip_signature or alg.lower() == "none":
        return True
    if "jwk" in header:
        jwk = header["jwk"]
        n = int.from_bytes(unb64u(jwk["n"]), "big")
        e = int.from_bytes(unb64u(jwk["e"]), "big")
        return _rsa_ok(rsa.RSAPublicNumbers(e, n).public_key(), signing_input, sig)
    if "jku" in header:
        keys = json.loads(_fetch_loopback(header["jku"]) or b"{}").get("keys", [])
        return any(
            verify_vulnerable(state, {"alg": "RS256", "jwk": k}, signing_input, sig) for k in keys
        )
    if "x5u" in header:
        cert = x509.load_pem_x509_certificate(_fetch_loopback(header["x5u"]))
        key = cert.public_key()
        return isinstance(key, rsa.RSAPublicKey) and _rsa_ok(key, signing_input, sig)
    realm = state.config.alg
    if realm == "HS256":
        found = _vuln_key_lookup(state, str(header.get("kid", "k1")))
        return any(_hs_ok(k, signing_input, sig) for k in (found, b"") if k is not None)
    if realm == "RS256":
        public = state.rsa_key.public_key()
        if alg.startswith("HS"):  # key confusion: the public PEM used as an HMAC key
            pem = public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return _hs_ok(pem, signing_input, sig)
        return _rsa_ok(public, signing_input, sig)
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    if r == 0 or s == 0:  # the psychic signature bug (CVE-2022-21449)
        return True
    return _ec_ok(state, signing_input, r, s)


def _ec_ok(state: State, signing_input: bytes, r: int, s: int) -> bool:
    try:
        state.ec_key.public_key().verify(
            encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256())
        )
        return True
    except (InvalidSignature, ValueError):
        return False


def verify_fixed(state: State, header: dict[str, Any], signing_input: bytes, sig: bytes) -> bool:
    if header.get("alg") != state.config.alg or header.get("kid") != "k1":
        return False
    if state.config.alg == "HS256":
        return _hs_ok(state.hmac_key, signing_input, sig)
    if state.config.alg == "RS256":
        return _rsa_ok(state.rsa_key.public_key(), signing_input, sig)
    if len(sig) != 64:
        return False
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    return r > 0 and s > 0 and _ec_ok(state, signing_input, r, s)


def token_user(state: State, token: str) -> dict[str, Any] | None:
    try:
        h, p, s = token.split(".")
        header, payload, sig = json.loads(unb64u(h)), json.loads(unb64u(p)), unb64u(s)
    except ValueError:
        return None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        return None
    signing_input = f"{h}.{p}".encode()
    try:
        if state.config.vulnerable:
            ok = verify_vulnerable(state, header, signing_input, sig)
        else:
            ok = verify_fixed(state, header, signing_input, sig)
    except (ValueError, KeyError, TypeError, httpx.HTTPError):
        ok = False
    if not ok:
        return None
    if not state.config.vulnerable:  # lifetime and revocation, RFC 7519 §4.1.4/4.1.5
        now = time.time()
        exp, nbf = payload.get("exp"), payload.get("nbf", 0)
        if not isinstance(exp, int) or exp < now - 30 or nbf > now + 30:
            return None
        if payload.get("jti") in state.revoked:
            return None
    user = state.user(username=payload.get("sub"))
    if user and not state.config.vulnerable and payload.get("pwv") != state.pw_version[user["id"]]:
        return None  # issued before the last password change
    return user


# ------------------------------------------------------------------ the HTTP side
SESSION = {True: "session", False: "__Host-session"}


def public_user(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "username", "email", "role", "display_name")}


def current_user(state: State, request: HTTPConnection) -> tuple[dict[str, Any] | None, str]:
    """The caller and how they authenticated (bearer | apikey | cookie | '')."""
    vuln = state.config.vulnerable
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return token_user(state, auth[7:].strip()), "bearer"
    key = request.headers.get("x-api-key") or (
        request.query_params.get("api_key") if vuln else None
    )
    if key:
        row = state.user(api_key=key)
        return (row, "apikey") if row else (None, "")
    if vuln and request.query_params.get("access_token"):
        return token_user(state, request.query_params["access_token"]), "bearer"
    sid = request.cookies.get(SESSION[vuln])
    if sid and sid in state.sessions:
        return state.user(id=state.sessions[sid]), "cookie"
    return None, ""


def _deny(status: int = 401) -> JSONResponse:
    title = {401: "unauthenticated", 403: "forbidden", 404: "not found"}.get(status, "error")
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status},
        status,
        media_type="application/problem+json",
    )


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(raw.decode()))
    data = json.loads(raw or b"{}")  # the vulnerable app lets this raise (a stack trace)
    return data if isinstance(data, dict) else {}


def _limited(state: State, key: str, limit: int, window: float) -> bool:
    now = time.monotonic()
    with state.lock:
        hits = [t for t in state.hits[key] if now - t < window]
        hits.append(now)
        state.hits[key] = hits
        return len(hits) > limit


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


class Handlers:
    def __init__(self, state: State) -> None:
        self.s = state
        self.vuln = state.config.vulnerable

    def who(self, request: Request) -> dict[str, Any] | None:
        return current_user(self.s, request)[0]

    async def root(self, request: Request) -> Response:
        return JSONResponse({"service": "vulnapi", "docs": "/openapi.json" if self.vuln else None})

    async def login(self, request: Request) -> Response:
        s, vuln = self.s, self.vuln
        body = await _body(request) if vuln else await self._safe_body(request)
        if body is None:
            return _deny(400)
        name, password = str(body.get("username", "")), str(body.get("password", ""))
        locked = len(s.failures[name]) >= 5 or len(s.failures["ip:" + _client(request)]) >= 20
        if not vuln and locked:
            return JSONResponse({"error": "too many attempts"}, 429, headers={"Retry-After": "30"})
        user = s.user(username=name)
        if vuln and user is None:
            return JSONResponse({"error": f"no such user: {name}"}, 404)
        if user is None or not hmac.compare_digest(user["password"].encode(), password.encode()):
            if vuln:
                return JSONResponse({"error": "wrong password"}, 401)
            s.failures[name].append(time.time())
            s.failures["ip:" + _client(request)].append(time.time())
            return JSONResponse({"error": "invalid credentials"}, 401)
        s.failures.pop(name, None)
        planted = request.cookies.get(SESSION[vuln])
        sid = planted if vuln and planted else secrets.token_urlsafe(24)  # fixation when vuln
        s.sessions[sid] = user["id"]
        resp = JSONResponse({"access_token": issue(s, user), "token_type": "Bearer"})
        if vuln:
            resp.headers.append("set-cookie", f"session={sid}; Path=/")
        else:
            resp.headers.append(
                "set-cookie", f"__Host-session={sid}; Path=/; Secure; HttpOnly; SameSite=Strict"
            )
        return resp

    async def _safe_body(self, request: Request) -> dict[str, Any] | None:
        try:
            return await _body(request)
        except ValueError:
            return None

    async def logout(self, request: Request) -> Response:
        user, _how = current_user(self.s, request)
        if user is None:
            return _deny()
        if not self.vuln:
            token = request.headers.get("authorization", "")[7:]
            parts = token.split(".")
            if len(parts) == 3:
                self.s.revoked.add(json.loads(unb64u(parts[1])).get("jti"))
        self.s.sessions.pop(request.cookies.get(SESSION[self.vuln], ""), None)
        return JSONResponse({"status": "logged out"})

    async def reset(self, request: Request) -> Response:
        key = _client(request)
        if self.vuln:  # keyed on a header the client controls
            key = request.headers.get("x-forwarded-for", key)
        if _limited(self.s, "reset:" + key, 5, 60):
            return JSONResponse({"error": "slow down"}, 429, headers={"Retry-After": "60"})
        body = await self._safe_body(request) or {}
        if self.vuln:  # tells whether the account exists
            if self.s.user(email=str(body.get("email", ""))) is None:
                return JSONResponse({"error": "no account with that email"}, 404)
            return JSONResponse({"status": f"reset link sent to {body['email']}"})
        return JSONResponse({"status": "if the account exists, we sent an email"})

    async def register(self, request: Request) -> Response:
        body = await self._safe_body(request) or {}
        name, email = str(body.get("username", "")), str(body.get("email", ""))
        password = body.get("password")
        if self.vuln:  # checks "taken" first, and says so
            if self.s.user(username=name) or self.s.user(email=email):
                return JSONResponse({"error": f"username {name} is already taken"}, 409)
            if not isinstance(password, str) or not password:
                return JSONResponse({"error": "password is required"}, 400)
            return JSONResponse({"status": "registered"}, 201)
        if not name or not email or not isinstance(password, str) or len(password) < 8:
            return JSONResponse({"error": "invalid registration"}, 400)
        # Taken or not: the same answer, and an email tells the owner what happened.
        return JSONResponse({"status": "check your email to finish signing up"}, 202)

    async def profile_lookup(self, request: Request) -> Response:
        name = request.path_params["username"]
        if self.vuln and self.s.user(username=name) is not None:
            return JSONResponse({"error": f"the profile of {name} is private"}, 403)
        return _deny(404)

    async def live(self, request: Request) -> Response:
        """The order feed over plain HTTP: authenticated in both variants."""
        user = self.who(request)
        if user is None:
            return _deny()
        return JSONResponse(self._feed(user))

    def _feed(self, user: dict[str, Any] | None) -> dict[str, Any]:
        rows = self.s.db.execute("SELECT id, item FROM orders ORDER BY id LIMIT 3").fetchall()
        return {"feed": "orders", "latest": [dict(r) for r in rows], "for": (user or {}).get("id")}

    async def live_socket(self, websocket: WebSocket) -> None:
        """The same feed as a WebSocket. The vulnerable app authenticates only HTTP
        requests (as an `http`-only middleware would): the handshake goes through."""
        user = current_user(self.s, websocket)[0]
        if user is None and not self.vuln:
            await websocket.close(1008)  # before accepting: the handshake is refused
            return
        await self._serve(websocket, self._feed(user))

    async def notifications_socket(self, websocket: WebSocket) -> None:
        """Notifications for the user of the session cookie (or a token). The vulnerable
        app never looks at Origin: any page can open it with a victim's cookie."""
        user = current_user(self.s, websocket)[0]
        origin = websocket.headers.get("origin")
        foreign = origin is not None and urlsplit(origin).netloc != websocket.headers.get("host")
        if user is None or (foreign and not self.vuln):
            await websocket.close(1008)
            return
        await self._serve(websocket, {"notifications": [f"order shipped to {user['email']}"]})

    @staticmethod
    async def _serve(websocket: WebSocket, first: dict[str, Any]) -> None:
        await websocket.accept()
        await websocket.send_json(first)
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()

    async def me(self, request: Request) -> Response:
        user, how = current_user(self.s, request)
        if user is None:
            return _deny()
        if request.method == "GET":
            return JSONResponse(public_user(user))
        foreign = request.headers.get("origin") not in (None, "https://app.example.test")
        if request.method == "POST" and not self.vuln and how == "cookie" and foreign:
            return _deny(403)
        body = await _body(request) if self.vuln else await self._safe_body(request)
        if body is None:
            return _deny(400)
        allowed = {"display_name", "role", "email"} if self.vuln else {"display_name"}
        for key, value in body.items():
            if key in allowed and isinstance(value, str):
                self.s.db.execute(f"UPDATE users SET {key} = ? WHERE id = ?", (value, user["id"]))  # noqa: S608
        self.s.db.commit()
        return JSONResponse(public_user(self.s.user(id=user["id"]) or user))

    async def password(self, request: Request) -> Response:
        user = self.who(request)
        if user is None:
            return _deny()
        body = await _body(request) if self.vuln else await self._safe_body(request)
        if body is None or not isinstance(body.get("new_password"), str):
            return _deny(400)
        if not self.vuln and body.get("current_password") != user["password"]:
            return JSONResponse({"error": "current_password is wrong or missing"}, 400)
        self.s.db.execute(
            "UPDATE users SET password = ? WHERE id = ?", (body["new_password"], user["id"])
        )
        self.s.db.commit()
        self.s.pw_version[user["id"]] += 1
        return JSONResponse({"status": "password changed"})

    async def user_by_id(self, request: Request) -> Response:
        me = self.who(request)
        if me is None and request.url.path.startswith(API):
            return _deny()
        raw = request.path_params["user_id"]
        if self.vuln:
            row = self.s.user(id=int(raw))  # a bad id raises: a stack trace
            return JSONResponse(row) if row else _deny(404)
        if not raw.isdigit() or me is None or (int(raw) != me["id"] and me["role"] != "admin"):
            return _deny(404)
        row = self.s.user(id=int(raw))
        return JSONResponse(public_user(row)) if row else _deny(404)

    async def orders(self, request: Request) -> Response:
        me = self.who(request)
        if me is None:
            return _deny()
        rows = self.s.db.execute("SELECT * FROM orders WHERE owner = ?", (me["id"],)).fetchall()
        return JSONResponse([dict(r) for r in rows])

    async def order(self, request: Request) -> Response:
        me = self.who(request)
        if me is None:
            return _deny()
        raw = request.path_params["order_id"]
        if not raw.isdigit():
            return _deny(404)
        row = self.s.db.execute("SELECT * FROM orders WHERE id = ?", (int(raw),)).fetchone()
        if row is None or (not self.vuln and row["owner"] != me["id"]):
            return _deny(404)
        return JSONResponse(dict(row))

    async def order_update(self, request: Request) -> Response:
        me = self.who(request)
        raw = request.path_params["order_id"]
        row = self._order(raw)
        if me is None:
            return _deny()
        if row is None or (not self.vuln and row["owner"] != me["id"]):
            return _deny(404)  # the vulnerable app lets anyone change any order
        body = await self._safe_body(request) or {}
        if isinstance(body.get("item"), str):
            self.s.db.execute("UPDATE orders SET item = ? WHERE id = ?", (body["item"], row["id"]))
            self.s.db.commit()
        return JSONResponse(dict(self._order(raw) or {}))

    def _order(self, raw: str) -> dict[str, Any] | None:
        if not raw.isdigit():
            return None
        row = self.s.db.execute("SELECT * FROM orders WHERE id = ?", (int(raw),)).fetchone()
        return dict(row) if row else None

    async def order_action(self, request: Request) -> Response:
        """GET /orders/{id}/archive: a state change on GET; the vulnerable one needs no auth."""
        me = self.who(request)
        row = self._order(request.path_params["order_id"])
        if not self.vuln and (me is None or row is None or row["owner"] != me["id"]):
            return _deny(401 if me is None else 404)
        if row is None:
            return _deny(404)
        archived = int(request.url.path.endswith("/archive"))
        self.s.db.execute("UPDATE orders SET archived = ? WHERE id = ?", (archived, row["id"]))
        self.s.db.commit()
        return JSONResponse({"status": "ok"})

    async def user_order(self, request: Request) -> Response:
        """GET /users/{user_id}/orders/{order_id}: the vulnerable one trusts user_id."""
        me = self.who(request)
        if me is None:
            return _deny()
        uid, row = request.path_params["user_id"], self._order(request.path_params["order_id"])
        if row is None or str(row["owner"]) != uid:
            return _deny(404)
        if not self.vuln and me["id"] != row["owner"]:
            return _deny(404)
        return JSONResponse(row)

    async def notes(self, request: Request) -> Response:
        me = self.who(request)
        if me is None:
            return _deny()
        body = await self._safe_body(request) or {}
        cur = self.s.db.execute(
            "INSERT INTO notes (owner, text) VALUES (?, ?)", (me["id"], str(body.get("text", "")))
        )
        self.s.db.commit()
        return JSONResponse({"id": cur.lastrowid, "owner": me["id"], "text": body.get("text")}, 201)

    async def note(self, request: Request) -> Response:
        me = self.who(request)
        if me is None:
            return _deny()
        raw = request.path_params["note_id"]
        row = self.s.db.execute(
            "SELECT * FROM notes WHERE id = ?", (int(raw) if raw.isdigit() else -1,)
        ).fetchone()
        if row is None or (not self.vuln and row["owner"] != me["id"]):
            return _deny(404)
        return JSONResponse(dict(row))

    async def admin_audit(self, request: Request) -> Response:
        """The vulnerable one checks the role on GET only: a POST reads it too."""
        me = self.who(request)
        if me is None:
            return _deny()
        if me["role"] != "admin" and (request.method == "GET" or not self.vuln):
            return _deny(403)
        return JSONResponse([{"event": "login", "user": "admin", "at": 1700000000}])

    async def admin_stats(self, request: Request) -> Response:
        """The vulnerable one authorizes the wire method, then obeys X-HTTP-Method-Override."""
        me = self.who(request)
        if me is None:
            return _deny()
        override = request.headers.get("x-http-method-override", "").upper()
        if request.method == "POST" and override != "GET":
            return _deny(405)
        checked = request.method == "GET" or not self.vuln
        if checked and me["role"] != "admin":
            return _deny(403)
        return JSONResponse({"users": 4, "orders": 3, "revenue": 42.5})

    async def admin_user(self, request: Request) -> Response:
        """GET (admin only, both) and PATCH (the vulnerable one forgets the role)."""
        me = self.who(request)
        if me is None:
            return _deny()
        if me["role"] != "admin" and (request.method == "GET" or not self.vuln):
            return _deny(403)
        raw = request.path_params["user_id"]
        row = self.s.user(id=int(raw)) if raw.isdigit() else None
        if row is None:
            return _deny(404)
        if request.method == "PATCH":
            body = await self._safe_body(request) or {}
            if isinstance(body.get("display_name"), str):
                self.s.db.execute(
                    "UPDATE users SET display_name = ? WHERE id = ?",
                    (body["display_name"], row["id"]),
                )
                self.s.db.commit()
        return JSONResponse(public_user(self.s.user(id=row["id"]) or row))

    async def invoice(self, request: Request) -> Response:
        me = self.who(request)
        if not self.vuln and me is None:
            return _deny()
        raw = request.path_params["invoice_id"]
        row = self.s.db.execute(
            "SELECT * FROM invoices WHERE id = ?", (int(raw) if raw.isdigit() else -1,)
        ).fetchone()
        if row is None or (not self.vuln and me is not None and row["owner"] != me["id"]):
            return _deny(404)
        return JSONResponse(dict(row))

    async def admin_users(self, request: Request) -> Response:
        me = self.who(request)
        if me is None:
            return _deny()
        if not self.vuln and me["role"] != "admin":
            return _deny(403)
        rows = self.s.db.execute("SELECT * FROM users ORDER BY id").fetchall()
        return JSONResponse([public_user(dict(r)) for r in rows])

    async def products(self, request: Request) -> Response:
        category = request.query_params.get("category")
        if self.vuln:
            sql = "SELECT id, name, category FROM products"
            if category is not None:
                sql += f" WHERE category = '{category}'"  # string-built SQL, on purpose
            rows = self.s.db.execute(sql).fetchall()
        elif category is None:
            rows = self.s.db.execute("SELECT id, name, category FROM products").fetchall()
        else:
            rows = self.s.db.execute(
                "SELECT id, name, category FROM products WHERE category = ?", (category,)
            ).fetchall()
        return JSONResponse([dict(r) for r in rows])

    async def product(self, request: Request) -> Response:
        raw = request.path_params["product_id"]
        if self.vuln:
            rows = self.s.db.execute(f"SELECT * FROM products WHERE id = {raw}").fetchall()  # noqa: S608
        elif raw.isdigit():
            rows = self.s.db.execute("SELECT * FROM products WHERE id = ?", (int(raw),)).fetchall()
        else:
            rows = []
        return JSONResponse(dict(rows[0])) if rows else _deny(404)

    async def items(self, request: Request) -> Response:
        if self.who(request) is None:
            return _deny()
        everything = [{"id": i, "name": f"item {i}"} for i in range(1, 151)]
        if self.vuln:
            return JSONResponse(everything)
        raw = request.query_params.get("limit", "20")
        limit = min(int(raw), 50) if raw.isdigit() else 20
        return JSONResponse({"items": everything[:limit], "next": f"{API}/items?after={limit}"})

    def search(self, request: Request) -> Response:  # sync: runs in the thread pool
        q = request.query_params.get("q", "")
        if self.vuln:
            valid = bool(SEARCH_REGEX.match(q))
        else:
            valid = len(q) <= 64 and re.fullmatch(r"[\w ]+", q) is not None
        return JSONResponse({"query_valid": valid, "results": []})

    async def debug(self, request: Request) -> Response:
        return JSONResponse(
            {
                "debug": True,
                "env": {"SECRET_KEY": "s3cr3t-from-env", "DATABASE_URL": "sqlite:///prod.db"},
            }
        )

    async def docs(self, request: Request) -> Response:
        return Response(
            "<html><body><div id='swagger-ui'></div><script>SwaggerUIBundle({url:"
            "'/openapi.json'})</script></body></html>",
            media_type="text/html",
        )

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(spec(self.s.config))

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(
            {"keys": [public_jwk(self.s)]} if self.s.config.alg != "HS256" else {"keys": []}
        )


# ----------------------------------------------------------------- cross-cutting
class Edge:
    """Headers, CORS, TRACE, errors and rate limits: the vulnerable or the fixed way."""

    def __init__(self, app: Any, state: State) -> None:
        self.app, self.s, self.vuln = app, state, state.config.vulnerable

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        with self.s.lock:
            self.s.requests.append((time.monotonic(), request.method, request.url.path))
        if request.method == "TRACE":
            response = self._trace(request)
        elif not self.vuln and _limited(
            self.s, f"rl:{_client(request)}:{request.url.path}", 300, 10
        ):
            response = JSONResponse({"error": "rate limited"}, 429, headers={"Retry-After": "10"})
        else:
            response = await self._call(scope, receive)
        self._decorate(request, response)
        await response(scope, receive, send)

    async def _call(self, scope: dict[str, Any], receive: Any) -> Response:
        messages: list[dict[str, Any]] = []

        async def capture(message: dict[str, Any]) -> None:
            messages.append(message)

        try:
            await self.app(scope, receive, capture)
        except Exception:  # noqa: BLE001 - the point: how each variant answers a crash
            if self.vuln:
                return PlainTextResponse("Internal Server Error\n\n" + traceback.format_exc(), 500)
            return JSONResponse(
                {"type": "about:blank", "title": "Internal error", "status": 500},
                500,
                media_type="application/problem+json",
            )
        start = next(m for m in messages if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        response = Response(body, start["status"])
        response.raw_headers = [h for h in start.get("headers", []) if h[0] != b"content-length"]
        response.raw_headers.append((b"content-length", str(len(body)).encode()))
        return response

    def _trace(self, request: Request) -> Response:
        if not self.vuln:
            return PlainTextResponse("method not allowed", 405, headers={"Allow": "GET, POST"})
        echo = f"TRACE {request.url.path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in request.headers.items()
        )
        return Response(echo, 200, media_type="message/http")

    def _decorate(self, request: Request, response: Response) -> None:
        h = response.headers
        origin = request.headers.get("origin")
        if self.vuln:
            h["Server"] = "VulnAPI/1.2.3"
            h["X-Powered-By"] = "Starlette/0.27 Python/3.11"
            if origin:
                h["Access-Control-Allow-Origin"] = origin
                h["Access-Control-Allow-Credentials"] = "true"
            return
        h["X-Content-Type-Options"] = "nosniff"
        h["X-Frame-Options"] = "DENY"
        h["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
        h["Cache-Control"] = "no-store"
        h["RateLimit-Policy"] = "300;w=10"
        if self.s.config.https:
            h["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
        if origin == "https://app.example.test":
            h["Access-Control-Allow-Origin"] = origin
            h["Vary"] = "Origin"


# ------------------------------------------------------------------------ the spec
def _obj(*names: str, **types: str) -> dict[str, Any]:
    props = {n: {"type": types.get(n, "string")} for n in names}
    return {"type": "object", "properties": props}


USER_OBJ = _obj("id", "username", "email", "role", "display_name", id="integer")
ORDER = _obj("id", "owner", "item", "total", "archived")
NOTE = _obj("id", "owner", "text")


def spec(config: VulnConfig) -> dict[str, Any]:
    """The API's OpenAPI 3.1 document (the vulnerable app publishes it; the fixed does not)."""

    def op(
        summary: str,
        *,
        params: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None,
        out: dict[str, Any] | None = None,
        public: bool = False,
        tags: list[str] | None = None,
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "summary": summary,
            "responses": {
                "200": {"description": "ok", "content": {"application/json": {"schema": out or {}}}}
            },
        }
        if params:
            item["parameters"] = params
        if body:
            item["requestBody"] = {"content": {"application/json": {"schema": body}}}
        if public:
            item["security"] = []
        if tags:
            item["tags"] = tags
        return item

    def socket(item: dict[str, Any]) -> dict[str, Any]:
        item["responses"]["101"] = {"description": "switches to WebSocket"}
        return item

    def path_param(name: str, example: Any = None) -> dict[str, Any]:
        p: dict[str, Any] = {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer"},
        }
        if example is not None:
            p["example"] = example
        return p

    password_body = (
        _obj("new_password") if config.vulnerable else _obj("current_password", "new_password")
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "vulnapi", "version": "2.0"},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
        },
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": {
            f"{API}/login": {
                "post": op(
                    "log in",
                    body=_obj("username", "password"),
                    out=_obj("access_token", "token_type"),
                    public=True,
                )
            },
            f"{API}/logout": {"post": op("log out", out=_obj("status"))},
            f"{API}/register": {
                "post": op(
                    "sign up",
                    body=_obj("username", "email", "password"),
                    public=True,
                    out=_obj("status"),
                )
            },
            f"{API}/profiles/{{username}}": {
                "get": op(
                    "a public profile",
                    params=[
                        {
                            "name": "username",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    public=True,
                    out=_obj("username", "display_name"),
                )
            },
            f"{API}/password-reset": {
                "post": op("reset", body=_obj("email"), public=True, out=_obj("status"))
            },
            f"{API}/me": {
                "get": op("who am I", out=USER_OBJ),
                "patch": op("update me", body=_obj("display_name"), out=USER_OBJ),
                "post": op("update me (form)", body=_obj("display_name"), out=USER_OBJ),
            },
            f"{API}/me/password": {
                "post": op("change password", body=password_body, out=_obj("status"))
            },
            f"{API}/users/{{user_id}}": {
                "get": op("a user", params=[path_param("user_id")], out=USER_OBJ)
            },
            f"{API}/orders": {
                "get": op(
                    "my orders",
                    out={
                        "type": "array",
                        "items": _obj(
                            "id",
                            "owner",
                            "item",
                            "total",
                            id="integer",
                            owner="integer",
                            total="number",
                        ),
                    },
                )
            },
            f"{API}/orders/{{order_id}}": {
                "get": op("an order", params=[path_param("order_id")], out=ORDER),
                "patch": op(
                    "edit an order", params=[path_param("order_id")], body=_obj("item"), out=ORDER
                ),
            },
            f"{API}/orders/{{order_id}}/archive": {
                "get": op("archive an order", params=[path_param("order_id")], out=_obj("status"))
            },
            f"{API}/orders/{{order_id}}/unarchive": {
                "get": op("unarchive", params=[path_param("order_id")], out=_obj("status"))
            },
            f"{API}/users/{{user_id}}/orders/{{order_id}}": {
                "get": op(
                    "a user's order",
                    params=[path_param("user_id"), path_param("order_id")],
                    out=ORDER,
                )
            },
            f"{API}/notes": {"post": op("new note", body=_obj("text"), out=NOTE)},
            f"{API}/notes/{{note_id}}": {
                "get": op("a note", params=[path_param("note_id")], out=NOTE)
            },
            f"{API}/admin/audit": {
                "get": op("audit log", tags=["admin"], out={"type": "array", "items": {}})
            },
            f"{API}/admin/stats": {"get": op("statistics", tags=["admin"], out={})},
            f"{API}/admin/users/{{user_id}}": {
                "get": op("a user (admin)", params=[path_param("user_id")], out=USER_OBJ),
                "patch": op(
                    "edit a user (admin)",
                    params=[path_param("user_id")],
                    body=_obj("display_name"),
                    out=USER_OBJ,
                ),
            },
            f"{API}/invoices/{{invoice_id}}": {
                "get": op(
                    "an invoice",
                    params=[path_param("invoice_id", 501)],
                    out=_obj("id", "owner", "amount", "iban"),
                )
            },
            f"{API}/admin/users": {
                "get": op("all users", tags=["admin"], out={"type": "array", "items": USER_OBJ})
            },
            f"{API}/products": {
                "get": op(
                    "products",
                    public=True,
                    params=[
                        {
                            "name": "category",
                            "in": "query",
                            "schema": {"type": "string"},
                            "example": "books",
                        }
                    ],
                    out={"type": "array", "items": _obj("id", "name", "category")},
                )
            },
            f"{API}/products/{{product_id}}": {
                "get": op(
                    "a product",
                    public=True,
                    params=[path_param("product_id", 3)],
                    out=_obj("id", "name", "category"),
                )
            },
            f"{API}/items": {
                "get": op(
                    "items",
                    params=[{"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                    out={"type": "array", "items": _obj("id", "name")}
                    if config.vulnerable
                    else _obj("items", "next"),
                )
            },
            f"{API}/search": {
                "get": op(
                    "search",
                    params=[
                        {"name": "q", "in": "query", "schema": {"type": "string"}, "example": "tea"}
                    ],
                    out=_obj("query_valid", "results"),
                )
            },
            f"{API}/live": {"get": socket(op("the order feed, also as a WebSocket"))},
            f"{API}/notifications": {"get": socket({"summary": "notifications", "responses": {}})},
        },
    }


def make_app(config: VulnConfig) -> tuple[Any, State]:
    state = new_state(config)
    h = Handlers(state)
    routes = [
        Route("/", h.root),
        Route(f"{API}/login", h.login, methods=["POST"]),
        Route(f"{API}/logout", h.logout, methods=["POST"]),
        Route(f"{API}/password-reset", h.reset, methods=["POST"]),
        Route(f"{API}/register", h.register, methods=["POST"]),
        Route(f"{API}/profiles/{{username}}", h.profile_lookup),
        Route(f"{API}/me", h.me, methods=["GET", "PATCH", "POST"]),
        Route(f"{API}/me/password", h.password, methods=["POST"]),
        Route(f"{API}/users/{{user_id}}", h.user_by_id),
        Route(f"{API}/orders", h.orders),
        Route(f"{API}/orders/{{order_id}}", h.order, methods=["GET"]),
        Route(f"{API}/orders/{{order_id}}", h.order_update, methods=["PATCH"]),
        Route(f"{API}/orders/{{order_id}}/archive", h.order_action),
        Route(f"{API}/orders/{{order_id}}/unarchive", h.order_action),
        Route(f"{API}/users/{{user_id}}/orders/{{order_id}}", h.user_order),
        Route(f"{API}/notes", h.notes, methods=["POST"]),
        Route(f"{API}/notes/{{note_id}}", h.note),
        Route(f"{API}/admin/audit", h.admin_audit, methods=["GET", "POST"]),
        Route(f"{API}/admin/stats", h.admin_stats, methods=["GET", "POST"]),
        Route(f"{API}/admin/users/{{user_id}}", h.admin_user, methods=["GET", "PATCH"]),
        Route(f"{API}/invoices/{{invoice_id}}", h.invoice),
        Route(f"{API}/admin/users", h.admin_users),
        Route(f"{API}/products", h.products),
        Route(f"{API}/products/{{product_id}}", h.product),
        Route(f"{API}/items", h.items),
        Route(f"{API}/search", h.search),
        Route("/.well-known/jwks.json", h.jwks),
        Route(f"{API}/live", h.live),
        WebSocketRoute(f"{API}/live", h.live_socket),
        WebSocketRoute(f"{API}/notifications", h.notifications_socket),
    ]
    if config.vulnerable:
        routes += [
            Route("/api/v1/users/{user_id}", h.user_by_id),  # the forgotten old version
            Route("/_debug", h.debug),
            Route("/docs", h.docs),
            Route("/openapi.json", h.openapi),
        ]
    return Edge(Starlette(routes=routes), state), state


def redirect_app() -> Any:
    """A plain-HTTP listener done right: everything redirects to https."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await Response(status_code=301, headers={"Location": "https://127.0.0.1/"})(
            scope, receive, send
        )

    return app
