"""Small ASGI helpers shared by the front doors.

This is the one module that reads who sent a request: the TCP peer and the scheme of
the scope, and the ``X-Forwarded-*`` a trusted proxy adds (:meth:`Trust.remote`). Every
other part of bastion (the front doors, the authorization server, the login pages, the
admin API, ``/metrics``) takes the :class:`Remote` resolved here, so a deployment behind
a proxy is judged by its clients' addresses, never by the proxy's
(tests/gateway/test_remote.py greps src/ for other readers).
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import os
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, NamedTuple

from bastion.errors import PayloadTooLarge, RequestTimeout

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def bounded_receive(receive: Receive, max_body: int, idle_seconds: float) -> Receive:
    """``receive`` for a request whose body may be at most ``max_body`` bytes, each piece
    arriving within ``idle_seconds`` of the app asking for it (nginx's
    client_body_timeout). Once the body is whole the app's later calls (waiting for the
    client to disconnect, as streaming responses do) pass through unbounded.

    Raises (from the returned callable):
        PayloadTooLarge: the body passed ``max_body``.
        RequestTimeout: the next piece did not come in time.
    """
    received = 0
    whole = False

    async def bounded() -> Message:
        nonlocal received, whole
        if whole:
            return await receive()
        try:
            async with asyncio.timeout(idle_seconds):
                message = await receive()
        except TimeoutError:
            raise RequestTimeout("body_timeout") from None
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_body:
                raise PayloadTooLarge("body_too_large")
            whole = not message.get("more_body", False)
        else:
            whole = True  # disconnected
        return message

    return bounded


def header_dict(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lower-case names; repeated headers joined with ", " (RFC 9110 §5.3)."""
    headers: dict[str, str] = {}
    for name_b, value_b in raw:
        name = name_b.decode("latin-1").lower()
        value = value_b.decode("latin-1")
        if name in headers:
            headers[name] = headers[name] + ", " + value
        else:
            headers[name] = value
    return headers


_INVALID, _UNTRUSTED, _TRUSTED = 0, 1, 2
REMOTE_KEY = "bastion.remote"  # where a request's resolved Remote is kept in its scope


class Remote(NamedTuple):
    """Who sent a request, as bastion judges it (:meth:`Trust.remote`)."""

    ip: str  # the client's address
    secure: bool  # the client reached the first hop over TLS
    trusted: bool  # the TCP peer is a trusted proxy (its X-Request-Id is kept)


class Trust:
    """Which peers may speak for the client (X-Forwarded-*), cached per address."""

    def __init__(self, networks: Iterable[IPNet]) -> None:
        self.networks = tuple(networks)
        self._cache: dict[str, int] = {}

    def _kind(self, address: str) -> int:
        kind = self._cache.get(address)
        if kind is not None:
            return kind
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            kind = _INVALID
        else:
            kind = _TRUSTED if any(ip in net for net in self.networks) else _UNTRUSTED
        if len(self._cache) < 4096:  # bounded: an attacker's random addresses can't grow it
            self._cache[address] = kind
        return kind

    def trusted(self, address: str) -> bool:
        return self._kind(address) == _TRUSTED

    def client_ip(self, peer: str, headers: dict[str, str]) -> str:
        """The client address: the right-most X-Forwarded-For hop that is not a trusted
        proxy. A client cannot spoof it by sending its own X-Forwarded-For, because
        only hops appended by trusted proxies are skipped."""
        if self._kind(peer) != _TRUSTED:
            return peer
        forwarded = headers.get("x-forwarded-for")
        if not forwarded:
            real = _without_port(headers.get("x-real-ip", "").strip())
            return real if real and self._kind(real) != _INVALID else peer
        hops = [_without_port(h.strip()) for h in forwarded.split(",")]
        for hop in reversed(hops):
            kind = self._kind(hop)
            if kind == _INVALID:
                return peer
            if kind == _UNTRUSTED:
                return hop
        return hops[0]

    def remote(self, scope: Scope, headers: dict[str, str] | None = None) -> Remote:
        """The client of the request in ``scope`` (``headers``: its :func:`header_dict`,
        if made already), kept in the scope so a request is resolved once whichever part
        asks first.

        The address is :meth:`client_ip`'s. The scheme is the scope's, or, only from a
        trusted peer over plain HTTP, ``X-Forwarded-Proto: https`` (the proxy in front
        terminated TLS); a client cannot claim TLS for itself.
        """
        found = scope.get(REMOTE_KEY)
        if found is not None:
            return found  # type: ignore[no-any-return]
        if headers is None:
            headers = header_dict(scope["headers"])
        peer = peer_address(scope)
        trusted = self._kind(peer) == _TRUSTED
        secure = scope.get("scheme") in ("https", "wss")
        if trusted and not secure:
            secure = headers.get("x-forwarded-proto", "").lower() == "https"
        found = scope[REMOTE_KEY] = Remote(self.client_ip(peer, headers), secure, trusted)
        return found


def remote_of(scope: Scope) -> Remote:
    """The :class:`Remote` a front door resolved for this request (:meth:`Trust.remote`).

    Raises:
        LookupError: nothing resolved it: a mounting bug, refused rather than guessed.
    """
    found = scope.get(REMOTE_KEY)
    if not isinstance(found, Remote):
        raise LookupError("the request's client was not resolved (Trust.remote)")
    return found


def _without_port(hop: str) -> str:
    """``203.0.113.9:5555`` → ``203.0.113.9``, ``[2001:db8::1]:443`` → ``2001:db8::1``:
    some proxies (Azure's among them) append the client's port. Anything else as is."""
    if hop.startswith("["):
        return hop[1 : hop.find("]")] if "]" in hop else hop
    if hop.count(":") == 1:
        return hop.partition(":")[0]
    return hop


def peer_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def request_id(headers: dict[str, str], trusted: bool) -> str:
    """Keep a trusted proxy's X-Request-Id when it is well-formed; otherwise make one:
    a random per-process prefix and a counter (unique, no system call per request)."""
    if trusted:
        given = headers.get("x-request-id")
        if given and _REQUEST_ID.match(given):
            return given
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


async def send_response(
    send: Send, status: int, headers: list[tuple[str, str]], body: bytes = b""
) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


SECURITY_HEADERS = [
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("content-security-policy", "frame-ancestors 'none'"),
]
