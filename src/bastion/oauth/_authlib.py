"""Authlib's server machinery over plain values: requests in, ``(status, body, headers)`` out.

Authlib's grants call synchronous hooks; bastion's storage is async. Authlib therefore runs
in a worker thread (:meth:`Bridge.run`), and a hook that needs the database calls back into
the event loop with :meth:`Bridge.call` (``anyio.from_thread.run``). Hooks that need no
I/O (a cached client, signing a JWT) never leave the thread.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlencode

import anyio.from_thread
import anyio.to_thread
import orjson
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request

T = TypeVar("T")

# Authlib logs whole token responses at DEBUG ("Issue token {...}"): a secret in a log.
logging.getLogger("authlib").setLevel(logging.INFO)

MAX_PARAMS = 64


@dataclass(frozen=True, slots=True)
class HttpInput:
    """One HTTP request as the authorization server sees it, framework-free.

    ``url`` is the public URL (issuer-based) of the endpoint with its query string;
    ``headers`` keys are lower case.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Sequence[tuple[str, str]] = ()
    form: Sequence[tuple[str, str]] = ()
    client_ip: str = ""
    cookies: Mapping[str, str] = field(default_factory=dict)

    def params(self) -> dict[str, str]:
        """Query and form parameters (first value of each)."""
        out: dict[str, str] = {}
        for name, value in (*self.query, *self.form):
            out.setdefault(name, value)
        return out

    def repeated(self) -> str | None:
        """The first parameter sent more than once (RFC 6749 §3.1, §3.2: MUST NOT)."""
        seen: set[str] = set()
        for name, _ in (*self.query, *self.form):
            if name in seen:
                return name
            seen.add(name)
        return None


@dataclass
class OAuthResponse:
    """What Authlib's ``handle_response`` returns: plain status, body and headers."""

    status: int
    body: bytes
    headers: list[tuple[str, str]]

    @property
    def location(self) -> str | None:
        for name, value in self.headers:
            if name.lower() == "location":
                return value
        return None

    @location.setter
    def location(self, value: str) -> None:  # Authlib's RFC 9207 extension sets it
        self.headers = [(n, v) for n, v in self.headers if n.lower() != "location"]
        self.headers.append(("Location", value))

    def json(self) -> Any:
        return orjson.loads(self.body)


def make_response(status: int, body: Any, headers: Sequence[tuple[str, str]]) -> OAuthResponse:
    if isinstance(body, dict):
        data = orjson.dumps(body)
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = bytes(body or b"")
    return OAuthResponse(status, data, list(headers))


class Headers(dict[str, str]):
    """Case-insensitive headers (Authlib reads ``headers.get("Authorization")``)."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__((k.lower(), v) for k, v in headers.items())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for name, value in pairs:
            self._datalist[name].append(value)
        self._data = {name: values[0] for name, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class BastionRequest(OAuth2Request):  # type: ignore[misc]
    """Authlib's request over an :class:`HttpInput` (or over stored parameters)."""

    def __init__(self, data: HttpInput, params: Mapping[str, str] | None = None) -> None:
        super().__init__(data.method, data.url, headers=Headers(data.headers))
        self.http = data
        if params is not None:
            pairs: Sequence[tuple[str, str]] = list(params.items())
            self._args = dict(params)
            self._form = dict(params)
        else:
            pairs = [*data.query, *data.form]
            self._args = dict(reversed(data.query))
            self._form = dict(reversed(data.form))
        self.payload = _Payload(pairs)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class NeedsLoop(Exception):
    """Raised by :meth:`Bridge.call` during an inline attempt: redo the work in a thread."""


class Bridge:
    """Runs Authlib in a worker thread and lets its hooks await the event loop.

    ``inline_first`` first tries the work on the event loop itself: a token request that
    needs no database (a cached client, a JWT with no refresh token) then skips two thread
    hops. The first hook that would need the loop raises :class:`NeedsLoop` *before* doing
    anything, and the whole request is redone in a worker thread. Only pure work (parsing,
    signing) may happen before a :meth:`call`.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    async def run(self, fn: Callable[[], T], *, inline_first: bool = False) -> T:
        if inline_first:
            self._local.inline = True
            try:
                return fn()
            except NeedsLoop:
                pass
            finally:
                self._local.inline = False
        return await anyio.to_thread.run_sync(fn)

    def call(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """From inside :meth:`run`'s thread: await ``fn(*args)`` on the event loop."""
        if getattr(self._local, "inline", False):
            raise NeedsLoop
        return anyio.from_thread.run(fn, *args)


class BaseServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's AuthorizationServer, framework-free: responses are :class:`OAuthResponse`."""

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        if isinstance(request, HttpInput):
            return BastionRequest(request)
        raise TypeError(f"not a request: {type(request).__name__}")

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("bastion offers no JSON-bodied OAuth endpoint")

    def handle_response(self, status: int, body: Any, headers: Any) -> OAuthResponse:
        return make_response(status, body, headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


def error_redirect(redirect_uri: str, params: Mapping[str, str]) -> str:
    """``redirect_uri`` with ``params`` added to its query (RFC 6749 §4.1.2.1)."""
    sep = "&" if "?" in redirect_uri else "?"
    return redirect_uri + sep + urlencode(params)
