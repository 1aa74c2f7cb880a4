"""The forward-auth front door: nginx ``auth_request``, Caddy ``forward_auth``,
Traefik ForwardAuth and Envoy ``ext_authz`` (HTTP) ask bastion about a request they hold.

The original method and URI arrive in headers (``X-Forwarded-Method``/``X-Forwarded-Uri``
from Traefik and Caddy, ``X-Original-Method``/``X-Original-URI`` from the nginx snippet in
docs/), exactly one pair (``forwarded.original_request``): the proxy in front passes the
client's headers on to bastion, so a request carrying both pairs has one the client
wrote, and is refused rather than decided on the wrong one.

Replies carry no body: nginx stops reusing the connection after an auth reply with one
(DESIGN.md). On allow: 200 with the identity headers for the proxy to copy upstream. On
deny: the status with challenges, ``RateLimit`` headers and ``X-Bastion-Error``;
``X-Bastion-Status`` repeats it for nginx, which turns any status but 401/403 into 500.
"""

from __future__ import annotations

from collections.abc import Mapping

from bastion.errors import BadRequest, BastionError, Forbidden
from bastion.gateway._asgi import Scope, Send, Trust, header_dict, peer_address, request_id
from bastion.gateway._asgi import send_response as _send
from bastion.gateway._headers import AmbiguousRequest
from bastion.gateway._rsgi import RSGIProtocol, RSGIScope, split_address
from bastion.gateway._rsgi import header_dict as rsgi_headers
from bastion.gateway._upgrade import wants_websocket
from bastion.gateway.core import Gateway
from bastion.gateway.decision import Decision
from bastion.gateway.websocket import protocol_credential
from bastion.model import RequestView

FRONT_DOOR = "forward_auth"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class UntrustedForwarder(Forbidden):
    code = "forbidden"


def view_from_forwarded(
    scope: Scope, trust: Trust, prefix_path: str = "", source: str = "auto"
) -> RequestView:
    """The original request, as described by a trusted proxy's headers (ASGI).

    ``prefix_path`` is what followed the forward-auth path (Envoy's ``path_prefix`` form).
    """
    query = scope.get("query_string", b"").decode("latin-1") if prefix_path else ""
    headers, peer = header_dict(scope["headers"]), peer_address(scope)
    return view_from_headers(headers, peer, trust, scope["method"], prefix_path, query, source)


_READS_FORWARDED = ("auto", "x-forwarded")
_READS_ORIGINAL = ("auto", "x-original")


def original_request(
    headers: Mapping[str, str], source: str, own_method: str, own_uri: str
) -> tuple[str, str]:
    """The original method and URI from exactly one source (``forwarded.original_request``);
    ``own_method`` and ``own_uri`` are the auth request's own method and the path after
    the endpoint with its query (Envoy's prefix form; empty: not that form). An empty
    value counts as absent (nginx sends a header it was told to blank as nothing).

    Raises:
        AmbiguousRequest: both header pairs, or a pair the configured source never sends:
            one of them is the client's own.
        BadRequest: no source, or half of one.
    """
    get = headers.get  # plain lookups, no generators: every forward-auth request runs this
    forwarded_method, forwarded_uri = get("x-forwarded-method"), get("x-forwarded-uri")
    original_method, original_uri = get("x-original-method"), get("x-original-uri")
    if forwarded_method or forwarded_uri:
        if original_method or original_uri:
            raise AmbiguousRequest("both_forwarded_request_pairs")
        if source not in _READS_FORWARDED:
            raise AmbiguousRequest("unexpected_forwarded_request_pair")
        method, uri = forwarded_method, forwarded_uri
    elif original_method or original_uri:
        if source not in _READS_ORIGINAL:
            raise AmbiguousRequest("unexpected_forwarded_request_pair")
        method, uri = original_method, original_uri
    elif own_uri and source in ("auto", "path"):
        method, uri = own_method, own_uri  # Envoy ext_authz (HTTP service), prefix form
    else:
        method = uri = None
    if not method or not uri:
        raise BadRequest("missing_forwarded_request")
    return method, uri


def view_from_headers(
    headers: dict[str, str],
    peer: str,
    trust: Trust,
    own_method: str = "GET",
    prefix_path: str = "",
    query: str = "",
    source: str = "auto",
) -> RequestView:
    """The original request from the forwarded headers of a request from ``peer``;
    ``own_method`` and ``query`` are the auth request's own (Envoy's prefix form)."""
    if not trust.trusted(peer):
        raise UntrustedForwarder("untrusted_forwarder")
    own_uri = prefix_path + ("?" + query if query else "") if prefix_path else ""
    method, uri = original_request(headers, source, own_method, own_uri)
    method = method.upper()
    if method not in _METHODS:
        raise BadRequest("bad_forwarded_method")
    path, _, query = uri.partition("?")
    offered = headers.get("sec-websocket-protocol")
    if offered is not None and wants_websocket(headers):  # a browser's token (websocket.py)
        headers = protocol_credential(headers, offered.split(","))
    proto = headers.get("x-forwarded-proto", "http").lower()
    host = headers.get("x-forwarded-host") or headers.get("host") or ""
    return RequestView(
        method=method,
        path=path,
        query=query,
        host=host,
        headers=headers,
        client_ip=trust.client_ip(peer, headers),
        secure=proto == "https",
        request_id=request_id(headers, trusted=True),
    )


def answer(decision: Decision) -> tuple[int, list[tuple[str, str]]]:
    """The body-less reply to one forward-auth decision: status and headers."""
    if decision.allowed:
        return 200, decision.upstream_headers + decision.headers
    headers = [
        *decision.headers,
        ("x-bastion-error", decision.code),
        ("x-bastion-status", str(decision.status)),
        ("x-bastion-request-id", decision.request_id),
    ]
    # nginx before 1.23 reads only the first of several WWW-Authenticate headers into a
    # variable: the snippet sends each challenge again from its own numbered copy.
    challenges = [v for k, v in decision.headers if k.lower() == "www-authenticate"]
    headers += [(f"x-bastion-challenge-{n}", v) for n, v in enumerate(challenges, 1)]
    return decision.status, headers


def refusal(exc: BastionError) -> tuple[int, list[tuple[str, str]]]:
    """The reply when the forwarded request itself is unusable (no decision is made)."""
    return exc.status, [("x-bastion-error", exc.code), ("x-bastion-status", str(exc.status))]


async def handle(
    gateway: Gateway, trust: Trust, scope: Scope, send: Send, prefix_path: str = ""
) -> None:
    """Answer one forward-auth request (ASGI)."""
    try:
        source = gateway.config.forwarded.original_request
        view = view_from_forwarded(scope, trust, prefix_path, source)
    except BastionError as exc:
        status, headers = refusal(exc)
    else:
        status, headers = answer(await gateway.decide(view, FRONT_DOOR))
    await _send(send, status, headers)


async def handle_rsgi(
    gateway: Gateway, trust: Trust, scope: RSGIScope, protocol: RSGIProtocol
) -> None:
    """Answer one forward-auth request (granian's RSGI: header values stay ``str`` and
    the reply is one synchronous call)."""
    try:
        view = view_from_headers(
            rsgi_headers(scope.headers),
            split_address(scope.client)[0],
            trust,
            scope.method,
            source=gateway.config.forwarded.original_request,
        )
    except BastionError as exc:
        status, headers = refusal(exc)
    else:
        status, headers = answer(await gateway.decide(view, FRONT_DOOR))
    protocol.response_empty(status, headers)
