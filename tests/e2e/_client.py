"""An OAuth client (relying party) on another origin than bastion, for the browser tests:
a small HTTP server on 127.0.0.1 that receives the authorization responses, registered
with ``bastion clients create`` as the docs write it, and the code exchange it would do.

The client's origin is ``http://127.0.0.1:PORT`` (bastion's is ``http://localhost:PORT``).
``/bounce`` answers with a redirect to yet another origin (``http://localhost:PORT``, the
same server under another name), as a callback that hands the browser on to the app does.
"""

from __future__ import annotations

import base64
import html
import json
import secrets
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from tests._procs import BASTION
from tests._services import free_port
from tests.oauth._helpers import pkce

Page = Any
WAIT_MS = 15_000  # a blocked navigation leaves the page where it is: fail, don't hang


class _Handler(BaseHTTPRequestHandler):
    other_origin = ""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/bounce":
            self._send(302, b"", location=f"{self.other_origin}/landed?{urlsplit(self.path).query}")
            return
        if path == "/logout":
            self._logout_form(dict(parse_qsl(urlsplit(self.path).query)))
            return
        if path in ("/cb", "/landed", "/bye"):
            self._send(200, f'<h1 id="rp">{path[1:]}</h1>'.encode())
            return
        self._send(404, b"")

    def _logout_form(self, query: dict[str, str]) -> None:
        """The client's sign-out button: a form posted to bastion, under a CSP that allows
        posting to bastion only."""
        to = query.pop("to")
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in query.items()
        )
        body = f'<form method="post" action="{html.escape(to)}">{fields}<button id="sign-out">'
        csp = f"default-src 'none'; form-action {_origin(to)}"
        self._send(200, f"{body}Sign out</button></form>".encode(), csp=csp)

    def _send(self, status: int, body: bytes, location: str = "", csp: str = "") -> None:
        self.send_response(status)
        if location:
            self.send_header("location", location)
        if csp:
            self.send_header("content-security-policy", csp)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@dataclass
class RelyingParty:
    origin: str  # http://127.0.0.1:PORT
    other_origin: str  # http://localhost:PORT: where /bounce sends the browser
    client_id: str = ""
    secret: str = ""

    @property
    def callback(self) -> str:
        return f"{self.origin}/cb"

    @property
    def bounce(self) -> str:
        return f"{self.origin}/bounce"

    @property
    def bye(self) -> str:
        return f"{self.origin}/bye"

    def register(self, config_file: Path) -> None:
        """``bastion clients create`` (docs/oauth.md) with this client's addresses."""
        done = subprocess.run(
            [*BASTION, "clients", "create", "--name", "Example App", "--client-id",
             f"rp-{secrets.token_hex(4)}", "--grants", "authorization_code,refresh_token",
             "--redirect-uris", f"{self.callback},{self.bounce}", "--post-logout-uris",
             self.bye, "--scopes", "openid,profile", "--config", str(config_file)],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        self.secret = done.stdout.strip()
        self.client_id = done.stderr.split("client ", 1)[1].split(" ", 1)[0]


@contextmanager
def relying_party() -> Iterator[RelyingParty]:
    port = free_port()
    rp = RelyingParty(f"http://127.0.0.1:{port}", f"http://localhost:{port}")
    handler = type("Handler", (_Handler,), {"other_origin": rp.other_origin})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rp
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Flow:
    """One authorization request (code + PKCE) the client started in the browser."""

    base: str
    rp: RelyingParty
    redirect_uri: str
    state: str
    verifier: str

    def landed(self, page: Page, subject: str, *, at: str = "") -> dict[str, Any]:
        """Wait until the browser reaches the client with a code; exchange it as the
        client would; the token response (its ID token is for ``subject``)."""
        at = at or self.redirect_uri
        page.wait_for_url(f"{at}?**", timeout=WAIT_MS)
        query = dict(parse_qsl(urlsplit(page.url).query))
        assert query["state"] == self.state
        assert query["iss"] == self.base
        tokens = httpx.post(
            f"{self.base}/oauth2/token",
            data={"grant_type": "authorization_code", "code": query["code"],
                  "redirect_uri": self.redirect_uri, "code_verifier": self.verifier},
            auth=(self.rp.client_id, self.rp.secret), timeout=10,
        )  # fmt: skip
        assert tokens.status_code == 200, tokens.text
        body: dict[str, Any] = tokens.json()
        claims = _unverified_claims(body["id_token"])
        assert claims["sub"] == subject
        body["claims"] = claims
        return body


def start(page: Page, base: str, rp: RelyingParty, redirect_uri: str = "", **extra: str) -> Flow:
    """The client sends the browser to bastion's authorization endpoint."""
    verifier, challenge = pkce()
    flow = Flow(base, rp, redirect_uri or rp.callback, secrets.token_urlsafe(8), verifier)
    params = {"response_type": "code", "client_id": rp.client_id,
              "redirect_uri": flow.redirect_uri, "scope": "openid profile",
              "state": flow.state, "code_challenge": challenge,
              "code_challenge_method": "S256", **extra}  # fmt: skip
    page.goto(f"{base}/oauth2/authorize?{urlencode(params)}")
    return flow


def sign_out(page: Page, base: str, rp: RelyingParty, id_token: str, *, post: bool) -> None:
    """RP-initiated logout with the ID token as hint, by a link or by a form on the
    client's page (OIDC RP-Initiated Logout §2: GET and POST); the browser ends on the
    client's registered address."""
    fields = {"id_token_hint": id_token, "post_logout_redirect_uri": rp.bye}
    if post:
        page.goto(f"{rp.origin}/logout?{urlencode({'to': f'{base}/oauth2/logout', **fields})}")
        page.click("#sign-out")
    else:
        page.goto(f"{base}/oauth2/logout?{urlencode(fields)}")
    page.wait_for_url(rp.bye, timeout=WAIT_MS)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _unverified_claims(jwt: str) -> dict[str, Any]:
    """The ID token's claims (it came straight from the token endpoint)."""
    payload = jwt.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data
