"""An issuer's JSON Web Key Set (RFC 7517 §5), fetched over HTTPS and cached.

Fetching is bounded three ways so that neither the issuer nor an attacker can hurt the
gateway: a total time limit and a size cap per fetch, at most one fetch in flight per
issuer (concurrent callers share it), and at most one fetch per ``min_refresh_seconds``
however many unknown ``kid`` values arrive. When a fetch fails the last good key set keeps
being served; when none was ever fetched, verification fails closed with
:class:`~bastion.errors.Unavailable` (503: the issuer, a dependency, is down; the token
itself was not judged).
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from bastion.config import IssuerConfig
from bastion.errors import Unavailable
from bastion.model import Clock, system_clock
from bastion.tokens._keyset import KeyIndex, KeyRejected, import_verification_key

if TYPE_CHECKING:  # httpx (and the CLI it imports) loads only where a client is made
    import httpx

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_BYTES = 512 * 1024
MAX_KEYS = 100
_JSON_TYPES = frozenset({"application/json", "application/jwk-set+json"})


class JwksFetchError(Exception):
    """A fetch that produced no usable key set; the message is safe to log."""


def parse_jwks(raw: bytes) -> tuple[KeyIndex, int]:
    """The usable signing keys of a JWKS document and the number of keys skipped.

    Raises:
        JwksFetchError: when the document is not a JWKS or holds no usable key.
    """
    try:
        doc: Any = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise JwksFetchError("body is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise JwksFetchError("body is not a JWK set")
    entries = doc["keys"][:MAX_KEYS]
    keys = []
    for jwk in entries:
        try:
            keys.append(import_verification_key(jwk))
        except KeyRejected:
            continue  # encryption keys, private keys, other algorithms: never used
    if not keys:
        raise JwksFetchError("JWK set holds no usable signing key")
    return KeyIndex.of(keys), len(doc["keys"]) - len(keys)


async def fetch_bounded(
    client: httpx.AsyncClient,
    url: str,
    *,
    accept: str,
    content_types: frozenset[str],
    time_limit: float,
    max_bytes: int,
) -> bytes:
    """GET ``url`` and return its body: 200 only, one of ``content_types``, bounded.

    Raises:
        JwksFetchError: a status other than 200, another content type, a compressed or
            oversized body.
        httpx.HTTPError, TimeoutError, OSError: the transport failed or took too long.
    """
    # identity: a compressed body could expand far past max_bytes.
    headers = {"accept": accept, "accept-encoding": "identity"}
    async with asyncio.timeout(time_limit), client.stream("GET", url, headers=headers) as resp:
        if resp.status_code != 200:
            raise JwksFetchError(f"HTTP status {resp.status_code}")
        ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in content_types:
            raise JwksFetchError("content-type is not JSON")
        if resp.headers.get("content-encoding", "identity").lower() != "identity":
            raise JwksFetchError("compressed body refused")
        body = bytearray()
        async for chunk in resp.aiter_raw():
            body += chunk
            if len(body) > max_bytes:
                raise JwksFetchError(f"body larger than {max_bytes} bytes")
    return bytes(body)


class RemoteDocument(abc.ABC):
    """What every fetched document source holds: its URL, how often it may be fetched,
    the HTTP client (made, and then owned and closed, when none is shared) and the
    state of the fetch in flight, bounded (:meth:`_refresh`). :class:`JwksCache` and the
    discovery source build on it.
    """

    kind = "document"  # for log lines
    accept = "application/json"
    content_types = frozenset({"application/json"})

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float = 300,
        min_refresh_seconds: float = 30,
        client: httpx.AsyncClient | None = None,
        clock: Clock = system_clock,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        label: str = "",
    ) -> None:
        self.url = url
        self._cache_seconds = cache_seconds
        self._min_refresh = min_refresh_seconds
        self._own_client = client is None
        if client is None:
            import httpx  # only deployments that fetch pay for httpx (and its CLI)

            client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._client = client
        self._clock = clock
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._label = label or url
        self._last_attempt: float | None = None
        self._inflight: asyncio.Task[None] | None = None
        self.fetches = 0
        """Fetch attempts made (for metrics and tests)."""

    async def aclose(self) -> None:
        """Close the HTTP client if this source made it."""
        if self._own_client:
            await self._client.aclose()

    async def _refresh(self, now: float) -> None:
        """Fetch again, unless an attempt was made within ``min_refresh_seconds``;
        concurrent callers share the one fetch in flight."""
        task = self._inflight
        if task is None:
            if self._last_attempt is not None and now - self._last_attempt < self._min_refresh:
                return  # rate bound: random kids cannot make us hammer the issuer
            self._last_attempt = now
            task = asyncio.ensure_future(self._fetch_and_store())
            self._inflight = task
        # Shielded: a cancelled request does not cancel the fetch others wait for.
        await asyncio.shield(task)

    async def _fetch_and_store(self) -> None:
        """One attempt: :meth:`_fetch_and_accept`; a failure is logged, never raised."""
        import httpx

        self.fetches += 1
        try:
            await self._fetch_and_accept()
        except JwksFetchError as exc:
            self._log_failure(str(exc))
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            self._log_failure(type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - a fetch must never break verification
            self._log_failure(f"unexpected {type(exc).__name__}")
        finally:
            self._inflight = None

    async def _get(self) -> bytes:
        """The document's body, fetched within this source's bounds."""
        return await fetch_bounded(
            self._client,
            self.url,
            accept=self.accept,
            content_types=self.content_types,
            time_limit=self._timeout,
            max_bytes=self._max_bytes,
        )

    @abc.abstractmethod
    async def _fetch_and_accept(self) -> None:
        """Fetch the document and keep what it says (the subclass's part)."""

    def _log_failure(self, why: str) -> None:
        log.warning("%s %s: fetch failed (%s); failing closed", self.kind, self._label, why)


class JwksCache(RemoteDocument):
    """The keys behind one issuer's ``jwks_url``; implements ``KeySource``.

    Args:
        url: the JWKS URL.
        cache_seconds: how long a fetched key set is fresh.
        min_refresh_seconds: least time between two fetch attempts (unknown ``kid``,
            expiry or retry after a failure).
        client: a shared ``httpx.AsyncClient``; one is made (and owned) if omitted.
        clock: seconds since the epoch.
        timeout: seconds for the whole fetch, body included.
        max_bytes: the largest JWKS body accepted.
        label: the issuer's name, for log lines.
    """

    kind = "jwks"
    accept = "application/jwk-set+json, application/json"
    content_types = _JSON_TYPES
    _index: KeyIndex | None = None  # the last good key set, and when it was fetched
    _fetched_at = 0.0

    @classmethod
    def for_issuer(
        cls,
        issuer: IssuerConfig,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Clock = system_clock,
    ) -> JwksCache:
        if issuer.jwks_url is None:
            raise ValueError(f"issuer {issuer.name!r} has no jwks_url")
        return cls(
            str(issuer.jwks_url),
            cache_seconds=issuer.jwks_cache_seconds,
            min_refresh_seconds=issuer.jwks_min_refresh_seconds,
            client=client,
            clock=clock,
            label=issuer.name,
        )

    async def key_index(self, kid: str | None) -> KeyIndex:
        """The issuer's keys, refreshed when stale or when ``kid`` is unknown (rate-bound).

        Raises:
            Unavailable: no key set was ever fetched (fail closed).
        """
        now = self._clock()
        index = self._index
        stale = index is None or now - self._fetched_at >= self._cache_seconds
        unknown = index is not None and kid is not None and not index.has_kid(kid)
        if stale or unknown:
            await self._refresh(now)
            index = self._index
        if index is None:
            raise Unavailable("jwks_unavailable")
        return index

    async def _fetch_and_accept(self) -> None:
        index, skipped = await self._fetch()
        self._index = index
        self._fetched_at = self._clock()
        if skipped:
            log.info("jwks %s: skipped %d unusable keys", self._label, skipped)

    def _log_failure(self, why: str) -> None:
        serving = "serving the last good key set" if self._index else "no key set yet"
        log.warning("jwks %s: fetch failed (%s); %s", self._label, why, serving)

    async def _fetch(self) -> tuple[KeyIndex, int]:
        return parse_jwks(await self._get())
