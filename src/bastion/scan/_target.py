"""The only door to the network: every probe a check sends goes through :class:`Target`.

It holds the origin restriction, the request budget, the rate and the dry-run switch in
one place, so a check cannot reach another host, overspend, or send during a dry run.
"""

from __future__ import annotations

import asyncio
import contextvars
import http.cookiejar
import json
import os
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from bastion.scan._errors import BudgetExhausted, DryRun, OriginRefused
from bastion.scan._websocket import describe, first_words

MAX_BODY = 512 * 1024  # a response body larger than this is cut: evidence needs excerpts
MAX_SPEC_BODY = 32 * 1024 * 1024  # an OpenAPI document (large APIs publish 10 MB ones)
USER_AGENT = "bastion-scan/0.1 (+authorized security testing)"
# Who is sending (a check id): dry-run plans are listed per check.
PLAN_LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("plan_label", default="setup")


def origin_of(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"} or not parts.hostname:
        raise OriginRefused(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, parts.hostname.lower(), port


def origin_text(origin: tuple[str, str, int]) -> str:
    scheme, host, port = origin
    default = 443 if scheme == "https" else 80
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if port == default else f":{port}")


@dataclass(frozen=True)
class Exchange:
    """One request and its response, as the checks see them."""

    method: str
    url: str
    request_headers: Mapping[str, str]
    request_body: str
    status: int
    headers: httpx.Headers
    body: bytes
    elapsed: float
    truncated: bool = False  # the body went on past the request's ``max_body``

    @property
    def text(self) -> str:
        if self.status == 101:  # the frames a WebSocket sent (see Target.request)
            return describe(self.body)
        return self.body.decode("utf-8", "replace")

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body as JSON, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def set_cookies(self) -> list[str]:
        return self.headers.get_list("set-cookie")


class _Pacer:
    """At most ``rps`` requests per second, spread evenly (no bursts past the rate)."""

    def __init__(self, rps: float) -> None:
        self._interval = 1.0 / rps if rps > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self._interval:
            return
        async with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


class Target:
    """The scanned origin, and the budget, rate and safety rules of every request to it.

    Args:
        base_url: the API's base URL; its origin is the only one contacted.
        rps: requests per second (0 = unpaced, for tests only).
        max_requests: the budget; past it :class:`BudgetExhausted` is raised.
        timeout: seconds per request unless a probe asks for less.
        verify: TLS verification (a CA bundle path, True or False).
        dry_run: record what would be sent, send nothing (:class:`DryRun` is raised).
        sibling_ports: plain-HTTP ports of the same host that transport checks may try.
    """

    def __init__(
        self,
        base_url: str,
        *,
        rps: float = 20.0,
        max_requests: int = 2000,
        timeout: float = 10.0,
        verify: bool | ssl.SSLContext = True,
        dry_run: bool = False,
        sibling_ports: tuple[int, ...] = (80,),
        concurrency: int = 8,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.origin = origin_of(self.base_url)
        self.max_requests = max_requests
        self.timeout = timeout
        self.verify = verify
        self.dry_run = dry_run
        self.sibling_ports = sibling_ports
        self.sent = 0
        # Requests the target answered (any status), and why the last one that got no
        # answer failed: a scan of a target that answered nothing found nothing.
        self.answered = 0  # a TLS handshake that succeeds counts (the tls check's)
        self.last_failure = ""
        self.planned: list[str] = []
        self._pacer = _Pacer(rps)
        self._gate = asyncio.Semaphore(max(1, concurrency))
        self._client: httpx.AsyncClient | None = None
        # WebSocket handshakes go on connections of their own, never kept: a server that
        # refuses one (a 403) may close the connection after its answer, and a request
        # sent on it in between would fail.
        self._handshakes: httpx.AsyncClient | None = None

    @property
    def origin_url(self) -> str:
        return origin_text(self.origin)

    @property
    def https(self) -> bool:
        return self.origin[0] == "https"

    async def __aenter__(self) -> Target:
        # No cookie jar: a Set-Cookie must never leak from one identity into another's
        # requests; checks that want a cookie send it explicitly.
        self._client = self._new_client(httpx.Limits())
        self._handshakes = self._new_client(httpx.Limits(max_keepalive_connections=0))
        return self

    def _new_client(self, limits: httpx.Limits) -> httpx.AsyncClient:
        # No cookie jar: a Set-Cookie must never leak from one identity into another's
        # requests; checks that want a cookie send it explicitly.
        jar = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        return httpx.AsyncClient(
            verify=self.verify,
            timeout=self.timeout,
            follow_redirects=False,  # a redirect may point at another origin
            cookies=jar,
            headers={"User-Agent": USER_AGENT},
            trust_env=False,  # never go through a proxy from the environment
            limits=limits,
        )

    async def __aexit__(self, *exc: object) -> None:
        for client in (self._client, self._handshakes):
            if client is not None:
                await client.aclose()
        self._client = self._handshakes = None

    def url(self, path: str) -> str:
        """An absolute URL for ``path`` (relative to the base URL) on the target."""
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.base_url, path.lstrip("/"))

    def root_url(self, path: str) -> str:
        """An absolute URL for ``path`` from the origin's root (for /openapi.json etc.)."""
        return self.origin_url + "/" + path.lstrip("/")

    def _admit(self, url: str, *, sibling: bool) -> None:
        origin = origin_of(url)
        if origin == self.origin:
            return
        scheme, host, port = origin
        if sibling and scheme == "http" and host == self.origin[1] and port in self.sibling_ports:
            return
        raise OriginRefused(
            f"refused {origin_text(origin)}: only {self.origin_url} may be contacted"
        )

    async def _spend(self, line: str) -> None:
        if self.dry_run:
            self.planned.append(f"[{PLAN_LABEL.get()}] {line}")
            raise DryRun(line)
        if self.sent >= self.max_requests:
            raise BudgetExhausted(f"request budget of {self.max_requests} spent")
        self.sent += 1
        await self._pacer.wait()

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        content: str | bytes | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - per-probe bound, passed to httpx
        sibling: bool = False,
        max_body: int = MAX_BODY,
        listen: float = 0.0,
    ) -> Exchange:
        """Send one request to the target (or a permitted sibling) and read the reply.

        A reply that switches to WebSocket (101) has no body: ``body`` holds instead the
        raw frames the target sent by itself within ``listen`` seconds (see
        :mod:`bastion.scan._websocket`), and the connection is dropped.

        Raises:
            OriginRefused: the URL is not the target's origin.
            BudgetExhausted: the request budget is spent.
            DryRun: in a dry run, after recording the request.
            httpx.HTTPError: the request failed (refused connection...) or its whole
                exchange took longer than the timeout (``httpx.TimeoutException``).
        """
        url = self.url(path)
        self._admit(url, sibling=sibling)
        method = method.upper()
        await self._spend(f"{method} {url}")
        req_headers = dict(headers or {})
        upgrade = any(k.lower() == "upgrade" for k in req_headers)
        client = self._handshakes if upgrade else self._client
        if client is None:
            raise RuntimeError("Target used outside 'async with'")
        body: bytes | None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            req_headers.setdefault("Content-Type", "application/json")
        else:
            body = content.encode() if isinstance(content, str) else content
        limit = timeout if timeout is not None else self.timeout
        async with self._gate:
            request = client.build_request(
                method, url, headers=req_headers, params=params, content=body, timeout=limit
            )
            started = time.monotonic()
            data = bytearray()
            try:
                # httpx's timeout bounds each read; this bounds the whole exchange, so a
                # target that sends a byte now and then cannot hold the scan.
                async with asyncio.timeout(limit):
                    response = await client.send(request, stream=True)
                    self.answered += 1
                    try:
                        if response.status_code == 101:  # a WebSocket: frames, no body
                            data = await _listen(response, listen, max_body)
                        else:
                            async for chunk in response.aiter_bytes():
                                data.extend(chunk)
                                if len(data) > max_body:
                                    break
                    finally:
                        await response.aclose()
            except TimeoutError:
                self.last_failure = f"no whole answer within {limit} s"
                raise httpx.ReadTimeout(self.last_failure, request=request) from None
            except httpx.HTTPError as exc:
                self.last_failure = failure_text(exc)
                raise
            elapsed = time.monotonic() - started
        return Exchange(
            method=method,
            url=str(request.url),
            request_headers=dict(request.headers),
            request_body=(body or b"").decode("utf-8", "replace"),
            status=response.status_code,
            headers=response.headers,
            body=bytes(data[:max_body]),
            elapsed=elapsed,
            truncated=len(data) > max_body,
        )

    async def tls_handshake(
        self,
        context: ssl.SSLContext,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - the handshake runs in a thread
    ) -> ssl.SSLObject:
        """One TLS handshake with the target's own host and port, then close.

        Returns the handshake's ``SSLObject`` (version, cipher, peer certificate).
        Raises ``ssl.SSLError`` / ``OSError`` when the server refuses the offer.
        """
        _scheme, host, port = self.origin
        await self._spend(f"TLS handshake {host}:{port}")
        loop = asyncio.get_running_loop()
        shaken = await asyncio.wait_for(
            loop.run_in_executor(None, _handshake, context, host, port, timeout), timeout + 1
        )
        # A server that speaks TLS its clients refuse (TLS 1.0 only, an expired
        # certificate) may answer no HTTP request, and that is what the tls check reports.
        self.answered += 1
        return shaken


def failure_text(exc: BaseException) -> str:
    """Why a request got no answer, in words: the operating system's reason for a
    network error ("Connection refused"; httpx says "All connection attempts failed")."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):  # its errno is OpenSSL's, not the system's
            reason = getattr(cause, "verify_message", None) or cause.reason or str(cause)
            return f"TLS: {reason}"
        if isinstance(cause, OSError) and (cause.errno or 0) > 0:
            return os.strerror(cause.errno or 0)
        if isinstance(cause, socket.gaierror) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


async def _listen(response: httpx.Response, seconds: float, limit: int) -> bytearray:
    """What a target that switched to WebSocket sends by itself within ``seconds``
    (until its first data or close frame), then the connection is dropped."""
    data = bytearray()
    stream = response.extensions.get("network_stream")
    if stream is None:
        return data
    try:
        deadline = time.monotonic() + seconds
        while len(data) <= limit and first_words(bytes(data)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                chunk = await stream.read(65536, timeout=left)
            except httpcore.TimeoutException:
                break
            if not chunk:
                break
            data.extend(chunk)
    finally:
        await stream.aclose()
    return data


def _handshake(context: ssl.SSLContext, host: str, port: int, timeout: float) -> ssl.SSLObject:
    with socket.create_connection((host, port), timeout=timeout) as raw:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = context.wrap_bio(incoming, outgoing, server_hostname=host)
        raw.settimeout(timeout)
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    raw.sendall(outgoing.read())
                data = raw.recv(65536)
                if not data:
                    raise ConnectionError("closed during the TLS handshake") from None
                incoming.write(data)
        if outgoing.pending:
            raw.sendall(outgoing.read())
        return obj
