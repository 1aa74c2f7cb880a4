"""OAuth clients (RFC 6749 §2, RFC 7591 metadata names): storage, secrets, an in-memory
registry for the token endpoint's hot path.

A client secret is 256 random bits; only its HMAC-SHA256 under
``Keyring.client_secret_hmac`` is stored (a fast keyed hash: the secret is high-entropy,
so a password hash would only cost CPU), and it is compared in constant time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.errors import BadRequest
from bastion.model import Clock, system_clock
from bastion.store._db import RecordNotFound, db_errors, now_utc
from bastion.store.models import OAuthClient
from bastion.tokens._keyset import KeyRejected, import_verification_key

_clients = cast(Table, OAuthClient.__table__)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")


class AuthMethod(enum.StrEnum):
    """Token endpoint client authentication (RFC 7591 §2). ``none`` is a public client."""

    CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 - a method name
    CLIENT_SECRET_POST = "client_secret_post"  # noqa: S105 - a method name
    PRIVATE_KEY_JWT = "private_key_jwt"
    NONE = "none"


class GrantType(enum.StrEnum):
    AUTHORIZATION_CODE = "authorization_code"
    REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant name
    CLIENT_CREDENTIALS = "client_credentials"
    DEVICE_CODE = DEVICE_GRANT


class TokenFormat(enum.StrEnum):
    JWT = "jwt"  # RFC 9068, verified locally by any resource server
    OPAQUE = "opaque"  # random; resolved by introspection (or bastion's gateway)


class InvalidClientMetadata(BadRequest):
    """RFC 7591 §3.2.2 ``invalid_client_metadata``."""

    code = "invalid_client_metadata"
    title = "Invalid client metadata"


@dataclass(frozen=True, slots=True)
class ClientRecord:
    client_id: str
    name: str
    auth_method: AuthMethod
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    jwks: Mapping[str, Any] | None = None
    require_par: bool = False
    token_format: TokenFormat = TokenFormat.JWT
    access_token_ttl: int | None = None
    refresh_token_ttl: int | None = None
    id_token_alg: str = "RS256"  # noqa: S105 - an algorithm
    may_introspect: bool = False
    skip_consent: bool = False
    secret_hash: str | None = field(default=None, repr=False)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def public(self) -> bool:
        return self.auth_method is AuthMethod.NONE

    def as_dict(self) -> dict[str, Any]:
        """RFC 7591-style metadata, never the secret or its hash."""
        return {
            "client_id": self.client_id,
            "client_name": self.name,
            "token_endpoint_auth_method": self.auth_method.value,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "grant_types": list(self.grant_types),
            "scope": " ".join(self.scopes),
            "jwks": dict(self.jwks) if self.jwks else None,
            "require_pushed_authorization_requests": self.require_par,
            "access_token_format": self.token_format.value,
            "access_token_ttl": self.access_token_ttl,
            "refresh_token_ttl": self.refresh_token_ttl,
            "id_token_signed_response_alg": self.id_token_alg,
            "may_introspect": self.may_introspect,
            "skip_consent": self.skip_consent,
        }


def _record(row: Any) -> ClientRecord:
    return ClientRecord(
        client_id=row.client_id,
        name=row.name,
        auth_method=AuthMethod(row.auth_method),
        redirect_uris=tuple(row.redirect_uris or ()),
        post_logout_redirect_uris=tuple(row.post_logout_redirect_uris or ()),
        grant_types=tuple(row.grant_types or ()),
        scopes=tuple(row.scopes or ()),
        jwks=row.jwks,
        require_par=bool(row.require_par),
        token_format=TokenFormat(row.token_format),
        access_token_ttl=row.access_token_ttl,
        refresh_token_ttl=row.refresh_token_ttl,
        id_token_alg=row.id_token_alg,
        may_introspect=bool(row.may_introspect),
        skip_consent=bool(row.skip_consent),
        secret_hash=row.secret_hash,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def secret_digest(key: bytes, secret: str) -> str:
    return hmac.new(key, secret.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def _check_redirect_uri(uri: str) -> None:
    # RFC 9700 §4.1.3 / OAuth 2.1: exact, absolute, no fragment; http only on loopback.
    parts = urlsplit(uri)
    if not parts.scheme or parts.fragment or "#" in uri:
        raise InvalidClientMetadata(f"bad redirect URI {uri!r}", detail=f"bad redirect URI {uri!r}")
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise InvalidClientMetadata("no host", detail=f"redirect URI {uri!r} has no host")
        loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
        if parts.scheme == "http" and not loopback:
            raise InvalidClientMetadata(
                "http redirect", detail=f"redirect URI {uri!r}: http is allowed only on loopback"
            )
    elif parts.scheme in ("javascript", "data", "file", "vbscript"):
        raise InvalidClientMetadata("scheme", detail=f"redirect URI scheme {parts.scheme!r}")
    if (
        not uri.isascii()
        or any(ch in uri for ch in ' "<>\\^`{|}')
        or any(ord(c) < 0x21 for c in uri)
    ):
        raise InvalidClientMetadata("chars", detail=f"redirect URI {uri!r} has invalid characters")


def validate_client(record: ClientRecord) -> ClientRecord:
    """Refuse metadata bastion would not serve safely. Raises InvalidClientMetadata."""
    grants = set(record.grant_types)
    unknown = grants - {g.value for g in GrantType}
    if unknown or not grants:
        raise InvalidClientMetadata(
            "grants", detail=f"unknown or no grant types: {sorted(unknown)}"
        )
    if record.public and GrantType.CLIENT_CREDENTIALS in grants:
        raise InvalidClientMetadata(
            "public cc", detail="a public client cannot use client_credentials"
        )
    if GrantType.AUTHORIZATION_CODE in grants and not record.redirect_uris:
        raise InvalidClientMetadata("no redirect", detail="authorization_code needs redirect URIs")
    for uri in (*record.redirect_uris, *record.post_logout_redirect_uris):
        _check_redirect_uri(uri)
    for scope in record.scopes:
        if not scope or not all(0x21 <= ord(c) <= 0x7E and c not in '"\\' for c in scope):
            raise InvalidClientMetadata("scope", detail=f"bad scope {scope!r}")
    if record.auth_method is AuthMethod.PRIVATE_KEY_JWT:
        keys = (record.jwks or {}).get("keys")
        if not isinstance(keys, list) or not keys:
            raise InvalidClientMetadata("jwks", detail="private_key_jwt needs a jwks with keys")
        for jwk in keys:
            try:
                import_verification_key(jwk)
            except KeyRejected as exc:
                raise InvalidClientMetadata("jwk", detail=f"client key refused: {exc}") from None
    if record.id_token_alg not in ("RS256", "ES256", "EdDSA"):
        raise InvalidClientMetadata(
            "alg", detail="id_token_signed_response_alg: RS256, ES256 or EdDSA"
        )
    return record


@dataclass(frozen=True, slots=True)
class CreatedClient:
    record: ClientRecord
    secret: str | None = field(repr=False)


class ClientStore:
    """The ``oauth_clients`` table. ``secret_key`` is ``Keyring.client_secret_hmac``."""

    def __init__(self, engine: AsyncEngine, secret_key: bytes, *, clock: Clock = system_clock):
        self._engine = engine
        self._key = secret_key
        self._clock = clock

    def _new_secret(self, record: ClientRecord) -> tuple[str | None, str | None]:
        if record.auth_method in (AuthMethod.CLIENT_SECRET_BASIC, AuthMethod.CLIENT_SECRET_POST):
            secret = secrets.token_urlsafe(32)
            return secret, secret_digest(self._key, secret)
        return None, None

    async def create(self, record: ClientRecord) -> CreatedClient:
        """Store a new client; returns its secret once (``None`` for public/JWT clients)."""
        if not record.client_id:
            record = replace(record, client_id=secrets.token_urlsafe(16))
        validate_client(record)
        secret, digest = self._new_secret(record)
        now = now_utc(self._clock)
        values = record.as_dict()
        row = {
            "client_id": record.client_id,
            "name": record.name,
            "secret_hash": digest,
            "auth_method": record.auth_method.value,
            "redirect_uris": list(record.redirect_uris),
            "post_logout_redirect_uris": list(record.post_logout_redirect_uris),
            "grant_types": list(record.grant_types),
            "scopes": list(record.scopes),
            "jwks": values["jwks"],
            "require_par": record.require_par,
            "token_format": record.token_format.value,
            "access_token_ttl": record.access_token_ttl,
            "refresh_token_ttl": record.refresh_token_ttl,
            "id_token_alg": record.id_token_alg,
            "may_introspect": record.may_introspect,
            "skip_consent": record.skip_consent,
            "created_at": now,
            "updated_at": now,
        }
        with db_errors(f"client {record.client_id!r}"):
            async with self._engine.begin() as conn:
                result = await conn.execute(insert(_clients).values(row).returning(_clients))
                return CreatedClient(_record(result.one()), secret)

    async def get(self, client_id: str) -> ClientRecord | None:
        with db_errors("client lookup"):
            async with self._engine.connect() as conn:
                result = await conn.execute(
                    select(_clients).where(_clients.c.client_id == client_id)
                )
                row = result.one_or_none()
        return None if row is None else _record(row)

    async def list(self) -> tuple[ClientRecord, ...]:
        with db_errors("client list"):
            async with self._engine.connect() as conn:
                result = await conn.execute(select(_clients).order_by(_clients.c.client_id))
                return tuple(_record(row) for row in result)

    async def rotate_secret(self, client_id: str) -> CreatedClient:
        """Replace the secret now (the old one stops working at once on this instance and
        within ``oauth.client_cache_seconds`` on others)."""
        record = await self.get(client_id)
        if record is None:
            raise RecordNotFound(f"no client {client_id!r}", detail=f"no client {client_id!r}")
        secret, digest = self._new_secret(record)
        if secret is None:
            raise InvalidClientMetadata("no secret", detail=f"client {client_id!r} has no secret")
        with db_errors(f"client {client_id!r}"):
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    update(_clients)
                    .where(_clients.c.client_id == client_id)
                    .values(secret_hash=digest, updated_at=now_utc(self._clock))
                    .returning(_clients)
                )
                return CreatedClient(_record(result.one()), secret)

    async def delete(self, client_id: str) -> None:
        """Delete a client with its codes, refresh tokens and consents (cascade)."""
        with db_errors(f"client {client_id!r}"):
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    delete(_clients).where(_clients.c.client_id == client_id)
                )
        if result.rowcount == 0:
            raise RecordNotFound(f"no client {client_id!r}", detail=f"no client {client_id!r}")


class Client:
    """A client as Authlib's grants see it (``ClientMixin``), with strict checks."""

    def __init__(self, record: ClientRecord, secret_key: bytes) -> None:
        self.record = record
        self._key = secret_key
        self.client_id = record.client_id
        self.id_token_signed_response_alg = record.id_token_alg
        self.client_metadata = {"post_logout_redirect_uris": list(record.post_logout_redirect_uris)}

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # bastion always requires redirect_uri (OIDC Core §3.1.2.1)

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The requested scope if every token of it is allowed; else None (invalid_scope)."""
        if not scope:
            return " ".join(s for s in self.record.scopes if s != "offline_access")
        requested = scope.split()
        allowed = set(self.record.scopes)
        if not set(requested) <= allowed:
            return None
        return " ".join(dict.fromkeys(requested))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.record.redirect_uris  # exact string match (RFC 9700 §4.1.3)

    def check_client_secret(self, client_secret: str) -> bool:
        stored = self.record.secret_hash
        if stored is None:
            return False
        return hmac.compare_digest(secret_digest(self._key, client_secret), stored)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.record.auth_method.value

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and GrantType.AUTHORIZATION_CODE in self.record.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.record.grant_types


class ClientRegistry:
    """Clients cached in memory for ``ttl`` seconds (negative answers too), so the token
    endpoint makes no database round trip for a known client. Changes made through this
    process invalidate at once; other processes see them within ``ttl``."""

    def __init__(self, store: ClientStore, secret_key: bytes, *, ttl: float = 10.0) -> None:
        self.store = store
        self._key = secret_key
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Client | None]] = {}

    def cached(self, client_id: str) -> tuple[bool, Client | None]:
        """``(hit, client)`` from memory only; safe from any thread (plain dict reads)."""
        item = self._cache.get(client_id)
        if item is None or time.monotonic() - item[0] >= self._ttl:
            return False, None
        return True, item[1]

    async def get(self, client_id: str) -> Client | None:
        hit, client = self.cached(client_id)
        if hit:
            return client
        if len(client_id) > 64:
            return None
        record = await self.store.get(client_id)
        client = None if record is None else Client(record, self._key)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[client_id] = (time.monotonic(), client)
        return client

    def invalidate(self, client_id: str | None = None) -> None:
        if client_id is None:
            self._cache.clear()
        else:
            self._cache.pop(client_id, None)


def parse_list(values: Iterable[str] | str | None) -> tuple[str, ...]:
    """Space- or comma-separated text, or a list, as a de-duplicated tuple."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = values.replace(",", " ").split()
    return tuple(dict.fromkeys(v.strip() for v in values if v.strip()))


def record_from_metadata(data: Mapping[str, Any]) -> ClientRecord:
    """A :class:`ClientRecord` from RFC 7591-style metadata (the admin API and CLI).

    Raises:
        InvalidClientMetadata: unknown fields or bad values.
    """
    known = {
        "client_id", "client_name", "token_endpoint_auth_method", "redirect_uris",
        "post_logout_redirect_uris", "grant_types", "scope", "jwks",
        "require_pushed_authorization_requests", "access_token_format", "access_token_ttl",
        "refresh_token_ttl", "id_token_signed_response_alg", "may_introspect", "skip_consent",
    }  # fmt: skip
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidClientMetadata(
            "fields", detail=f"unknown client metadata: {', '.join(unknown)}"
        )
    try:
        method = AuthMethod(data.get("token_endpoint_auth_method", "client_secret_basic"))
        token_format = TokenFormat(data.get("access_token_format", "jwt"))
    except ValueError as exc:
        raise InvalidClientMetadata("enum", detail=str(exc)) from None
    name = data.get("client_name") or "client"
    for ttl_name in ("access_token_ttl", "refresh_token_ttl"):
        ttl = data.get(ttl_name)
        if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 30):
            raise InvalidClientMetadata("ttl", detail=f"{ttl_name} must be an integer >= 30")
    for flag in ("require_pushed_authorization_requests", "may_introspect", "skip_consent"):
        if not isinstance(data.get(flag, False), bool):
            raise InvalidClientMetadata("flag", detail=f"{flag} must be true or false")
    lists = {}
    for list_name in ("redirect_uris", "post_logout_redirect_uris", "grant_types"):
        value = data.get(list_name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidClientMetadata("list", detail=f"{list_name} must be a list of strings")
        lists[list_name] = tuple(value)
    scope = data.get("scope", "")
    jwks = data.get("jwks")
    if not isinstance(scope, str) or not isinstance(name, str) or len(name) > 255:
        raise InvalidClientMetadata("type", detail="scope and client_name must be strings")
    if jwks is not None and not isinstance(jwks, dict):
        raise InvalidClientMetadata("jwks", detail="jwks must be a JWK set object")
    client_id = data.get("client_id") or ""
    if (
        not isinstance(client_id, str)
        or len(client_id) > 64
        or (client_id and not all(c.isalnum() or c in "-._~" for c in client_id))
    ):
        raise InvalidClientMetadata(
            "client_id", detail="client_id: up to 64 of A-Z a-z 0-9 - . _ ~"
        )
    return validate_client(
        ClientRecord(
            client_id=client_id,
            name=name,
            auth_method=method,
            redirect_uris=lists["redirect_uris"],
            post_logout_redirect_uris=lists["post_logout_redirect_uris"],
            grant_types=lists["grant_types"] or (GrantType.CLIENT_CREDENTIALS.value,),
            scopes=parse_list(scope),
            jwks=jwks,
            require_par=bool(data.get("require_pushed_authorization_requests", False)),
            token_format=token_format,
            access_token_ttl=data.get("access_token_ttl"),
            refresh_token_ttl=data.get("refresh_token_ttl"),
            id_token_alg=str(data.get("id_token_signed_response_alg", "RS256")),
            may_introspect=bool(data.get("may_introspect", False)),
            skip_consent=bool(data.get("skip_consent", False)),
        )
    )
