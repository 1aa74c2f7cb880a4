"""Server-side browser sessions for the login, consent, device and logout pages.

The cookie holds 256 random bits; the database holds only their SHA-256, the subject and
how they authenticated (``auth_time``, ``acr``, ``amr``), a CSRF token and the pending
authorization requests (``tx``). A successful login always starts a new session id
(session fixation). The cookie is ``__Host-bastion-session; Secure; HttpOnly; Path=/;
SameSite=Lax`` when the issuer is https (``oauth.secure_cookies``); browsers refuse the
``__Host-`` prefix and ``Secure`` on plain-HTTP origins, so loopback test deployments get
``bastion-session`` without them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.model import Clock, system_clock
from bastion.store._db import db_errors, now_utc
from bastion.store.models import OAuthSession

_sessions = cast(Table, OAuthSession.__table__)
MAX_PENDING = 8  # pending authorization requests kept per browser session


@dataclass
class BrowserSession:
    id_hash: str
    csrf: str = field(repr=False)
    expires_at: datetime
    subject: str | None = None
    auth_time: int | None = None
    acr: str | None = None
    amr: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    cookie: str | None = field(default=None, repr=False)  # set when a cookie must be sent

    def check_csrf(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())

    def pending(self) -> dict[str, Any]:
        tx: dict[str, Any] = self.data.setdefault("tx", {})
        return tx

    def add_pending(self, item: dict[str, Any]) -> str:
        tx = self.pending()
        while len(tx) >= MAX_PENDING:
            tx.pop(next(iter(tx)))
        tx_id = secrets.token_urlsafe(16)
        tx[tx_id] = item
        return tx_id


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "surrogatepass")).hexdigest()


class SessionStore:
    def __init__(self, engine: AsyncEngine, *, ttl: int, clock: Clock = system_clock) -> None:
        self._engine = engine
        self._ttl = ttl
        self._clock = clock

    async def load(self, cookie: str | None) -> BrowserSession | None:
        if not cookie or len(cookie) > 128:
            return None
        now = now_utc(self._clock)
        with db_errors("session"):
            async with self._engine.connect() as conn:
                row = (
                    await conn.execute(
                        select(_sessions).where(
                            _sessions.c.id_hash == _digest(cookie), _sessions.c.expires_at > now
                        )
                    )
                ).one_or_none()
        if row is None:
            return None
        return BrowserSession(
            id_hash=row.id_hash,
            csrf=row.csrf,
            expires_at=row.expires_at,
            subject=row.subject,
            auth_time=row.auth_time,
            acr=row.acr,
            amr=tuple(row.amr or ()),
            data=dict(row.data or {}),
        )

    async def create(self, **values: Any) -> BrowserSession:
        cookie = secrets.token_urlsafe(32)
        now = now_utc(self._clock)
        session = BrowserSession(
            id_hash=_digest(cookie),
            csrf=secrets.token_urlsafe(32),
            expires_at=now + timedelta(seconds=self._ttl),
            cookie=cookie,
            **values,
        )
        with db_errors("session"):
            async with self._engine.begin() as conn:
                await conn.execute(delete(_sessions).where(_sessions.c.expires_at <= now))
                await conn.execute(
                    insert(_sessions).values(
                        id_hash=session.id_hash,
                        subject=session.subject,
                        auth_time=session.auth_time,
                        acr=session.acr,
                        amr=list(session.amr),
                        csrf=session.csrf,
                        data=session.data,
                        created_at=now,
                        expires_at=session.expires_at,
                    )
                )
        return session

    async def save(self, session: BrowserSession) -> None:
        with db_errors("session"):
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(_sessions)
                    .where(_sessions.c.id_hash == session.id_hash)
                    .values(data=session.data)
                )

    async def login(
        self, old: BrowserSession, *, subject: str, acr: str, amr: tuple[str, ...]
    ) -> BrowserSession:
        """A new, authenticated session carrying the old one's pending requests."""
        await self.delete(old)
        return await self.create(
            subject=subject,
            auth_time=int(self._clock()),
            acr=acr,
            amr=amr,
            data=old.data,
        )

    async def delete(self, session: BrowserSession) -> None:
        with db_errors("session"):
            async with self._engine.begin() as conn:
                await conn.execute(delete(_sessions).where(_sessions.c.id_hash == session.id_hash))
