"""An issuer's keys found through its metadata document (OpenID Connect Discovery 1.0
§4, RFC 8414 §3).

The document is fetched on first use with the same bounds as a JWKS (time limit, size
cap, 200 + JSON only, one fetch in flight, at most one attempt per
``min_refresh_seconds``). Its ``issuer`` must equal the configured issuer exactly
(OIDC Discovery §4.3, RFC 8414 §3.3): this pins the document to the issuer whose tokens
bastion accepts, so a wrong URL or an impersonating server is refused, not trusted.
Its ``jwks_uri`` then feeds a :class:`~bastion.tokens.jwks.JwksCache`, exactly as a
configured ``jwks_url`` would. Until one fetch has succeeded, verification fails closed
with :class:`~bastion.errors.Unavailable`; a later success needs no restart.

``jwks_uri`` may be on another host than the document (OIDC does not require the same
origin, and Google's is), but never a downgrade from ``https`` to ``http``. It is read
once per process: the keys behind it rotate, the URL itself practically never does.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bastion.config import IssuerConfig
from bastion.errors import Unavailable
from bastion.model import Clock, system_clock
from bastion.tokens._keyset import KeyIndex
from bastion.tokens.jwks import (
    DEFAULT_TIMEOUT,
    JwksCache,
    JwksFetchError,
    RemoteDocument,
)

if TYPE_CHECKING:  # httpx (and the CLI it imports) loads only where a client is made
    import httpx

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 256 * 1024
MAX_URL_LENGTH = 2048


class DiscoveryError(JwksFetchError):
    """A metadata document bastion will not use; the message is safe to log."""


class IssuerMismatch(DiscoveryError):
    """The document names another issuer than the configured one (a config error)."""


def parse_discovery(raw: bytes, *, issuer: str, discovery_url: str) -> str:
    """The ``jwks_uri`` of a metadata document whose ``issuer`` is ``issuer`` exactly.

    Raises:
        IssuerMismatch: the document's ``issuer`` differs from ``issuer``.
        DiscoveryError: the document is not JSON, or ``jwks_uri`` is missing or unusable.
    """
    try:
        doc: Any = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise DiscoveryError("body is not JSON") from None
    if not isinstance(doc, dict):
        raise DiscoveryError("body is not a metadata document")
    found = doc.get("issuer")
    if found != issuer:  # exact: no trailing-slash or case folding (RFC 8414 §3.3)
        shown = found[:200] if isinstance(found, str) else type(found).__name__
        raise IssuerMismatch(f"document issuer {shown!r} is not the configured {issuer!r}")
    jwks_uri = doc.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri or len(jwks_uri) > MAX_URL_LENGTH:
        raise DiscoveryError("document has no usable jwks_uri")
    parts = urlsplit(jwks_uri)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise DiscoveryError("jwks_uri is not an absolute http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise DiscoveryError("jwks_uri carries credentials")
    if parts.scheme == "http" and urlsplit(discovery_url).scheme == "https":
        raise DiscoveryError("jwks_uri downgrades https to http")
    return jwks_uri


class DiscoveryKeySource(RemoteDocument):
    """The keys of an issuer configured by ``discovery_url``; implements ``KeySource``.

    Args:
        url: the metadata document's URL.
        issuer: the exact issuer the document must name.
        cache_seconds: passed to the :class:`JwksCache` of the ``jwks_uri``.
        min_refresh_seconds: least time between two attempts (document or key set).
        client: a shared ``httpx.AsyncClient``; one is made (and owned) if omitted.
        clock: seconds since the epoch.
        timeout: seconds for the whole fetch, body included.
        max_bytes: the largest document accepted.
        label: the issuer's name, for log lines.
    """

    kind = "discovery"

    def __init__(
        self,
        url: str,
        issuer: str,
        *,
        cache_seconds: float = 300,
        min_refresh_seconds: float = 30,
        client: httpx.AsyncClient | None = None,
        clock: Clock = system_clock,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        label: str = "",
    ) -> None:
        super().__init__(
            url,
            cache_seconds=cache_seconds,
            min_refresh_seconds=min_refresh_seconds,
            client=client,
            clock=clock,
            timeout=timeout,
            max_bytes=max_bytes,
            label=label,
        )
        self.issuer = issuer
        self._jwks: JwksCache | None = None

    @classmethod
    def for_issuer(
        cls,
        issuer: IssuerConfig,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Clock = system_clock,
    ) -> DiscoveryKeySource:
        if issuer.discovery_url is None:
            raise ValueError(f"issuer {issuer.name!r} has no discovery_url")
        return cls(
            str(issuer.discovery_url),
            issuer.issuer,
            cache_seconds=issuer.jwks_cache_seconds,
            min_refresh_seconds=issuer.jwks_min_refresh_seconds,
            client=client,
            clock=clock,
            label=issuer.name,
        )

    @property
    def jwks(self) -> JwksCache | None:
        """The key set cache, once the document was fetched and accepted."""
        return self._jwks

    async def key_index(self, kid: str | None) -> KeyIndex:
        """The issuer's keys; discovers the ``jwks_uri`` first if not yet known.

        Raises:
            Unavailable: no document was ever accepted, or no key set ever fetched.
        """
        jwks = self._jwks
        if jwks is None:
            await self._refresh(self._clock())  # the document first
            jwks = self._jwks
            if jwks is None:
                raise Unavailable("discovery_unavailable")
        return await jwks.key_index(kid)

    async def _fetch_and_accept(self) -> None:
        body = await self._get()
        try:
            jwks_uri = parse_discovery(body, issuer=self.issuer, discovery_url=self.url)
        except IssuerMismatch as exc:
            # Not an outage: the configuration names the wrong document (or someone
            # serves a foreign one). Loud, and still closed.
            log.error("discovery %s: refused: %s", self._label, exc)
            return
        self._jwks = JwksCache(
            jwks_uri,
            cache_seconds=self._cache_seconds,
            min_refresh_seconds=self._min_refresh,
            client=self._client,
            clock=self._clock,
            timeout=self._timeout,
            label=self._label,
        )
        log.info("discovery %s: jwks_uri %s", self._label, jwks_uri)
