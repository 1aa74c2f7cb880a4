"""Durable grant state: authorization codes, refresh-token families, opaque access tokens,
revoked ``jti`` values, device codes, pushed requests, client-assertion ``jti`` values.

Every bearer secret (code, refresh token, opaque token, device code, user code) is stored
as an HMAC-SHA256 under a key derived from the master key: a database dump grants nothing.
Single use is enforced by the database (``UPDATE … WHERE used_at IS NULL``), never by a
read-then-write, so two concurrent redemptions cannot both win.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bastion.model import Clock, system_clock
from bastion.store._db import db_errors, now_utc
from bastion.store.models import (
    OAuthAccessToken,
    OAuthAssertionJti,
    OAuthCode,
    OAuthConsent,
    OAuthDeviceCode,
    OAuthPushedRequest,
    OAuthRefreshToken,
    OAuthRevokedToken,
    User,
)

_codes = cast(Table, OAuthCode.__table__)
_refresh = cast(Table, OAuthRefreshToken.__table__)
_access = cast(Table, OAuthAccessToken.__table__)
_revoked = cast(Table, OAuthRevokedToken.__table__)
_device = cast(Table, OAuthDeviceCode.__table__)
_par = cast(Table, OAuthPushedRequest.__table__)
_jtis = cast(Table, OAuthAssertionJti.__table__)
_consents = cast(Table, OAuthConsent.__table__)
_users = cast(Table, User.__table__)


@dataclass(frozen=True, slots=True)
class Owner:
    """The resource owner a grant is for, as Authlib's ``user``."""

    subject: str
    roles: tuple[str, ...] = ()
    auth_time: int | None = None
    acr: str | None = None
    amr: tuple[str, ...] = ()
    email: str | None = None
    email_verified: bool = False
    name: str | None = None

    def get_user_id(self) -> str:
        return self.subject


@dataclass(frozen=True, slots=True)
class CodeRow:
    """A claimed authorization code (Authlib's ``AuthorizationCodeMixin``)."""

    code_hash: str
    client_id: str
    subject: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str
    auth_time: int
    acr: str | None
    amr: tuple[str, ...]
    code_challenge_method: str = "S256"

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return self.acr

    def get_amr(self) -> list[str]:
        return list(self.amr)


@dataclass(frozen=True, slots=True)
class RefreshRow:
    token_hash: str
    family_id: str
    client_id: str
    subject: str
    scope: str
    auth_time: int | None
    acr: str | None
    amr: tuple[str, ...]
    expires_at: datetime
    idle_expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None

    def get_scope(self) -> str:
        return self.scope

    def check_client(self, client: Any) -> bool:
        return bool(client.get_client_id() == self.client_id)


@dataclass(frozen=True, slots=True)
class DeviceRow:
    device_hash: str
    client_id: str
    scope: str
    expires_at: datetime
    interval: int
    last_poll_at: datetime | None
    subject: str | None
    approved: bool | None
    auth_time: int | None
    amr: tuple[str, ...]
    used_at: datetime | None

    def get_client_id(self) -> str:
        return self.client_id

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Issued:
    """What save_token persists for one token response (filled by the token factory)."""

    jti: str
    exp: int
    claims: dict[str, Any] = field(default_factory=dict)
    opaque_hash: str | None = None
    refresh_hash: str | None = None


def _utc(epoch: float) -> datetime:
    from datetime import UTC

    return datetime.fromtimestamp(epoch, UTC)


class GrantStore:
    """Async functions over the grant tables. ``hmac_key`` hashes every bearer secret."""

    def __init__(self, engine: AsyncEngine, hmac_key: bytes, *, clock: Clock = system_clock):
        self.engine = engine
        self._key = hmac_key
        self._clock = clock

    def digest(self, value: str) -> str:
        return hmac.new(
            self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256
        ).hexdigest()

    def now(self) -> datetime:
        return now_utc(self._clock)

    # --- users -----------------------------------------------------------------------

    async def owner(self, subject: str, **login: Any) -> Owner | None:
        """The enabled user ``subject`` with the given login facts; None if gone/disabled."""
        with db_errors("user lookup"):
            async with self.engine.connect() as conn:
                row = (
                    await conn.execute(select(_users).where(_users.c.username == subject))
                ).one_or_none()
        if row is None or row.disabled:
            return None
        return Owner(
            subject=row.username,
            roles=tuple(row.roles or ()),
            email=row.email,
            email_verified=bool(row.email_verified),
            name=row.name,
            **login,
        )

    # --- authorization codes (RFC 6749 §4.1, RFC 7636) ------------------------------

    async def save_code(self, code: str, values: dict[str, Any], ttl: int) -> None:
        row = dict(values, code_hash=self.digest(code), expires_at=_utc(self._clock() + ttl))
        with db_errors("code"):
            async with self.engine.begin() as conn:
                await conn.execute(insert(_codes).values(row))

    async def claim_code(
        self, code: str, client_id: str
    ) -> tuple[CodeRow | None, list[tuple[str, int]] | None]:
        """Mark the code used and return it; ``(None, revoked)`` if it cannot be redeemed.

        A code used before revokes what its first use issued (RFC 6749 §4.1.2): ``revoked``
        is then the list of revoked ``(jti, exp)`` (not None), and the caller raises an alert.
        """
        code_hash = self.digest(code)
        now = self.now()
        with db_errors("code"):
            async with self.engine.begin() as conn:
                row = (
                    await conn.execute(
                        update(_codes)
                        .where(
                            _codes.c.code_hash == code_hash,
                            _codes.c.used_at.is_(None),
                            _codes.c.client_id == client_id,
                            _codes.c.expires_at > now,
                        )
                        .values(used_at=now)
                        .returning(_codes)
                    )
                ).one_or_none()
                if row is not None:
                    return _code_row(row), None
                old = (
                    await conn.execute(select(_codes).where(_codes.c.code_hash == code_hash))
                ).one_or_none()
                if old is None or old.used_at is None:
                    return None, None
                revoked = []
                if old.issued_jti is not None and old.issued_exp is not None:
                    await self._revoke_jti(conn, old.issued_jti, old.issued_exp)
                    revoked.append((old.issued_jti, int(old.issued_exp.timestamp())))
                if old.family_id is not None:
                    revoked += await self._revoke_family(conn, old.family_id)
                return None, revoked

    # --- refresh tokens: one-time use, families, reuse detection ---------------------

    async def find_refresh(self, token: str) -> RefreshRow | None:
        with db_errors("refresh token"):
            async with self.engine.connect() as conn:
                row = (
                    await conn.execute(
                        select(_refresh).where(_refresh.c.token_hash == self.digest(token))
                    )
                ).one_or_none()
        return None if row is None else _refresh_row(row)

    async def use_refresh(self, row: RefreshRow) -> bool:
        """Mark used (first use only). False when another request used it first."""
        with db_errors("refresh token"):
            async with self.engine.begin() as conn:
                result = await conn.execute(
                    update(_refresh)
                    .where(_refresh.c.token_hash == row.token_hash, _refresh.c.used_at.is_(None))
                    .values(used_at=self.now())
                )
        return bool(result.rowcount)

    async def revoke_family(self, family_id: str) -> list[tuple[str, int]]:
        """Revoke every refresh token of the family and the access tokens issued with them;
        return the revoked access tokens' ``(jti, exp)``."""
        with db_errors("refresh family"):
            async with self.engine.begin() as conn:
                return await self._revoke_family(conn, family_id)

    async def revoke_subject(self, subject: str) -> list[tuple[str, int]]:
        """Revoke every live refresh-token family of ``subject`` ("sign out everywhere")
        and the access tokens issued with them; return those ``(jti, exp)``."""
        with db_errors("refresh families"):
            async with self.engine.begin() as conn:
                families = (
                    await conn.execute(
                        select(_refresh.c.family_id)
                        .where(_refresh.c.subject == subject, _refresh.c.revoked_at.is_(None))
                        .distinct()
                    )
                ).scalars()
                revoked: list[tuple[str, int]] = []
                for family_id in list(families):
                    revoked += await self._revoke_family(conn, family_id)
                return revoked

    async def _revoke_family(self, conn: AsyncConnection, family_id: str) -> list[tuple[str, int]]:
        now = self.now()
        await conn.execute(
            update(_refresh)
            .where(_refresh.c.family_id == family_id, _refresh.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        rows = await conn.execute(
            select(_refresh.c.access_jti, _refresh.c.access_exp).where(
                _refresh.c.family_id == family_id, _refresh.c.access_jti.is_not(None)
            )
        )
        jtis = []
        for jti, exp in rows:
            if exp is not None and exp > now:
                await self._revoke_jti(conn, jti, exp)
                jtis.append((jti, int(exp.timestamp())))
        return jtis

    async def save_issued(
        self,
        issued: Issued,
        *,
        client_id: str,
        owner: Owner | None,
        scope: str,
        family: tuple[str, datetime] | None,
        idle_seconds: int,
        code_hash: str | None,
    ) -> None:
        """Persist one token response in one transaction: the opaque access token, the new
        refresh token (in ``family``: its id and absolute end) and the code's issue record."""
        with db_errors("token"):
            async with self.engine.begin() as conn:
                if issued.opaque_hash is not None:
                    await conn.execute(
                        insert(_access).values(
                            token_hash=issued.opaque_hash,
                            jti=issued.jti,
                            client_id=client_id,
                            claims=issued.claims,
                            expires_at=_utc(issued.exp),
                        )
                    )
                if issued.refresh_hash is not None and family is not None and owner is not None:
                    now = self.now()
                    await conn.execute(
                        insert(_refresh).values(
                            token_hash=issued.refresh_hash,
                            family_id=family[0],
                            client_id=client_id,
                            subject=owner.subject,
                            scope=scope,
                            auth_time=owner.auth_time,
                            acr=owner.acr,
                            amr=list(owner.amr),
                            issued_at=now,
                            expires_at=family[1],
                            idle_expires_at=min(family[1], now + timedelta(seconds=idle_seconds)),
                            access_jti=issued.jti,
                            access_exp=_utc(issued.exp),
                        )
                    )
                if code_hash is not None:
                    await conn.execute(
                        update(_codes)
                        .where(_codes.c.code_hash == code_hash)
                        .values(
                            issued_jti=issued.jti,
                            issued_exp=_utc(issued.exp),
                            family_id=family[0] if family else None,
                        )
                    )

    # --- access tokens: opaque lookup and revocation ---------------------------------

    async def find_opaque(self, token: str) -> tuple[dict[str, Any], datetime] | None:
        with db_errors("access token"):
            async with self.engine.connect() as conn:
                row = (
                    await conn.execute(
                        select(_access.c.claims, _access.c.expires_at).where(
                            _access.c.token_hash == self.digest(token)
                        )
                    )
                ).one_or_none()
        return None if row is None else (dict(row.claims), row.expires_at)

    async def revoke_jti(self, jti: str, exp: int) -> None:
        with db_errors("revocation"):
            async with self.engine.begin() as conn:
                await self._revoke_jti(conn, jti, _utc(exp))

    async def _revoke_jti(self, conn: AsyncConnection, jti: str, exp: datetime) -> None:
        exists = await conn.scalar(select(_revoked.c.jti).where(_revoked.c.jti == jti))
        if exists is None:
            await conn.execute(
                insert(_revoked).values(jti=jti, expires_at=exp, revoked_at=self.now())
            )

    async def is_revoked(self, jti: str) -> bool:
        with db_errors("revocation"):
            async with self.engine.connect() as conn:
                return (
                    await conn.scalar(select(_revoked.c.jti).where(_revoked.c.jti == jti))
                    is not None
                )

    async def revoked_since(self, since: datetime) -> list[tuple[str, datetime, datetime]]:
        """``(jti, expires_at, revoked_at)`` revoked at or after ``since`` and not expired."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(_revoked.c.jti, _revoked.c.expires_at, _revoked.c.revoked_at)
                .where(_revoked.c.revoked_at >= since, _revoked.c.expires_at > self.now())
                .order_by(_revoked.c.revoked_at)
            )
            return [(r.jti, r.expires_at, r.revoked_at) for r in rows]

    # --- client assertions (RFC 7523 §3: jti replay) ----------------------------------

    async def first_use_of_jti(self, client_id: str, jti: str, exp: float) -> bool:
        key = hashlib.sha256(f"{client_id}\x00{jti}".encode("utf-8", "surrogatepass")).hexdigest()
        try:
            async with self.engine.begin() as conn:
                await conn.execute(delete(_jtis).where(_jtis.c.expires_at < self.now()))
                await conn.execute(insert(_jtis).values(key=key, expires_at=_utc(exp)))
        except IntegrityError:
            return False
        return True

    # --- device codes (RFC 8628) -----------------------------------------------------

    async def save_device(self, device_code: str, user_code: str, values: dict[str, Any]) -> None:
        row = dict(
            values, device_hash=self.digest(device_code), user_code_hash=self.digest(user_code)
        )
        with db_errors("device code"):
            async with self.engine.begin() as conn:
                await conn.execute(insert(_device).values(row))

    async def find_device(self, device_code: str) -> DeviceRow | None:
        with db_errors("device code"):
            async with self.engine.connect() as conn:
                row = (
                    await conn.execute(
                        select(_device).where(_device.c.device_hash == self.digest(device_code))
                    )
                ).one_or_none()
        return None if row is None else _device_row(row)

    async def poll_device(self, row: DeviceRow) -> tuple[str, DeviceRow]:
        """One poll: ``pending``, ``slow_down``, ``denied``, ``expired``, ``used`` or
        ``approved`` (claimed: single use)."""
        now = self.now()
        with db_errors("device code"):
            async with self.engine.begin() as conn:
                if row.expires_at <= now:
                    return "expired", row
                if row.approved is None:
                    fast = (
                        row.last_poll_at is not None
                        and (now - row.last_poll_at).total_seconds() < row.interval
                    )
                    interval = row.interval + 5 if fast else row.interval  # RFC 8628 §3.5
                    await conn.execute(
                        update(_device)
                        .where(_device.c.device_hash == row.device_hash)
                        .values(last_poll_at=now, interval=interval)
                    )
                    return ("slow_down" if fast else "pending"), row
                result = await conn.execute(
                    update(_device)
                    .where(_device.c.device_hash == row.device_hash, _device.c.used_at.is_(None))
                    .values(used_at=now)
                )
                if not result.rowcount:
                    return "used", row
                return ("approved" if row.approved else "denied"), row

    async def device_by_user_code(self, user_code: str) -> DeviceRow | None:
        with db_errors("device code"):
            async with self.engine.connect() as conn:
                row = (
                    await conn.execute(
                        select(_device).where(_device.c.user_code_hash == self.digest(user_code))
                    )
                ).one_or_none()
        return None if row is None else _device_row(row)

    async def decide_device(self, row: DeviceRow, owner: Owner, approved: bool) -> bool:
        with db_errors("device code"):
            async with self.engine.begin() as conn:
                result = await conn.execute(
                    update(_device)
                    .where(
                        _device.c.device_hash == row.device_hash,
                        _device.c.approved.is_(None),
                        _device.c.expires_at > self.now(),
                    )
                    .values(
                        approved=approved,
                        subject=owner.subject,
                        auth_time=owner.auth_time,
                        amr=list(owner.amr),
                    )
                )
        return bool(result.rowcount)

    # --- pushed authorization requests (RFC 9126) ------------------------------------

    async def push_request(
        self, request_id: str, client_id: str, params: dict[str, str], ttl: int
    ) -> None:
        with db_errors("pushed request"):
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(_par).values(
                        request_id=request_id,
                        client_id=client_id,
                        params=params,
                        expires_at=_utc(self._clock() + ttl),
                    )
                )

    async def take_request(self, request_id: str, client_id: str) -> dict[str, str] | None:
        """The pushed parameters, once (single use), if unexpired and for ``client_id``."""
        with db_errors("pushed request"):
            async with self.engine.begin() as conn:
                row = (
                    await conn.execute(
                        update(_par)
                        .where(
                            _par.c.request_id == request_id,
                            _par.c.client_id == client_id,
                            _par.c.used_at.is_(None),
                            _par.c.expires_at > self.now(),
                        )
                        .values(used_at=self.now())
                        .returning(_par.c.params)
                    )
                ).one_or_none()
        return None if row is None else dict(row.params)

    # --- consent ---------------------------------------------------------------------

    async def consented(self, subject: str, client_id: str) -> frozenset[str]:
        with db_errors("consent"):
            async with self.engine.connect() as conn:
                scopes = await conn.scalar(
                    select(_consents.c.scopes).where(
                        _consents.c.subject == subject, _consents.c.client_id == client_id
                    )
                )
        return frozenset(scopes or ())

    async def grant_consent(self, subject: str, client_id: str, scopes: frozenset[str]) -> None:
        previous = await self.consented(subject, client_id)
        with db_errors("consent"):
            async with self.engine.begin() as conn:
                await conn.execute(
                    delete(_consents).where(
                        _consents.c.subject == subject, _consents.c.client_id == client_id
                    )
                )
                await conn.execute(
                    insert(_consents).values(
                        subject=subject,
                        client_id=client_id,
                        scopes=sorted(previous | scopes),
                        granted_at=self.now(),
                    )
                )


def _code_row(row: Any) -> CodeRow:
    return CodeRow(
        code_hash=row.code_hash,
        client_id=row.client_id,
        subject=row.subject,
        redirect_uri=row.redirect_uri,
        scope=row.scope,
        nonce=row.nonce,
        code_challenge=row.code_challenge,
        auth_time=row.auth_time,
        acr=row.acr,
        amr=tuple(row.amr or ()),
    )


def _refresh_row(row: Any) -> RefreshRow:
    return RefreshRow(
        token_hash=row.token_hash,
        family_id=row.family_id,
        client_id=row.client_id,
        subject=row.subject,
        scope=row.scope,
        auth_time=row.auth_time,
        acr=row.acr,
        amr=tuple(row.amr or ()),
        expires_at=row.expires_at,
        idle_expires_at=row.idle_expires_at,
        used_at=row.used_at,
        revoked_at=row.revoked_at,
    )


def _device_row(row: Any) -> DeviceRow:
    return DeviceRow(
        device_hash=row.device_hash,
        client_id=row.client_id,
        scope=row.scope,
        expires_at=row.expires_at,
        interval=row.interval,
        last_poll_at=row.last_poll_at,
        subject=row.subject,
        approved=row.approved,
        auth_time=row.auth_time,
        amr=tuple(row.amr or ()),
        used_at=row.used_at,
    )
