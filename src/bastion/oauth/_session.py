"""Server-side browser sessions for the login, consent, device and logout pages.

The cookie holds 256 random bits; the database holds only their SHA-256, the subject and
how they authenticated (``auth_time``, ``acr``, ``amr``), a CSRF token and the pending
authorization requests (``tx``). A successful login always starts a new session id
(session fixation). The cookie is ``__Host-bastion-session; Secure; HttpOnly; Path=/;
SameSite=Lax`` when the issuer is https (``oauth.secure_cookies``); browsers refuse the
``__Host-`` prefix and ``Secure`` on plain-HTTP origins, so loopback test deployments get
``bastion-session`` without them.

Two timeouts: the absolute one (``oauth.session_ttl_seconds``, counted from the login that
created the session id) and the idle one (``oauth.session_idle_seconds`` without a page
load). Each session remembers the address and browser it was created from, for the
account page's session list; "sign out everywhere" deletes every session of a subject.
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
TOUCH_EVERY = 60  # seconds: last_seen_at is written at most this often per session


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
    created_at: datetime | None = None
    last_seen_at: datetime | None = None
    client_ip: str = ""
    user_agent: str = ""

    @property
    def public_id(self) -> str:
        """A name for this session safe to put in a page (not the cookie, not its hash)."""
        return hashlib.sha256(b"session-id:" + self.id_hash.encode()).hexdigest()[:16]

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


def _session(row: Any) -> BrowserSession:
    return BrowserSession(
        id_hash=row.id_hash,
        csrf=row.csrf,
        expires_at=row.expires_at,
        subject=row.subject,
        auth_time=row.auth_time,
        acr=row.acr,
        amr=tuple(row.amr or ()),
        data=dict(row.data or {}),
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        client_ip=row.client_ip or "",
        user_agent=row.user_agent or "",
    )


class SessionStore:
    """Args: ``ttl`` absolute lifetime, ``idle`` longest time between two page loads."""

    def __init__(
        self, engine: AsyncEngine, *, ttl: int, idle: int | None = None, clock: Clock = system_clock
    ) -> None:
        self._engine = engine
        self._ttl = ttl
        self._idle = idle or ttl
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
        session = _session(row)
        seen = session.last_seen_at or session.created_at or now
        if (now - seen).total_seconds() > self._idle:
            await self.delete(session)
            return None
        if (now - seen).total_seconds() >= TOUCH_EVERY:
            with db_errors("session"):
                async with self._engine.begin() as conn:
                    await conn.execute(
                        update(_sessions)
                        .where(_sessions.c.id_hash == session.id_hash)
                        .values(last_seen_at=now)
                    )
            session.last_seen_at = now
        return session

    async def create(self, **values: Any) -> BrowserSession:
        cookie = secrets.token_urlsafe(32)
        now = now_utc(self._clock)
        session = BrowserSession(
            id_hash=_digest(cookie),
            csrf=secrets.token_urlsafe(32),
            expires_at=now + timedelta(seconds=self._ttl),
            cookie=cookie,
            created_at=now,
            last_seen_at=now,
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
                        last_seen_at=now,
                        expires_at=session.expires_at,
                        client_ip=session.client_ip[:64] or None,
                        user_agent=session.user_agent[:255] or None,
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
        self,
        old: BrowserSession,
        *,
        subject: str,
        acr: str,
        amr: tuple[str, ...],
        client_ip: str = "",
        user_agent: str = "",
    ) -> BrowserSession:
        """A new, authenticated session carrying the old one's pending requests: a new
        session id at every login and step-up (session fixation)."""
        await self.delete(old)
        data = {k: v for k, v in old.data.items() if k == "tx"}
        return await self.create(
            subject=subject,
            auth_time=int(self._clock()),
            acr=acr,
            amr=amr,
            data=data,
            client_ip=client_ip or old.client_ip,
            user_agent=user_agent or old.user_agent,
        )

    async def of_subject(self, subject: str) -> list[BrowserSession]:
        """The live sessions of ``subject``, most recently used first."""
        now = now_utc(self._clock)
        with db_errors("session"):
            async with self._engine.connect() as conn:
                rows = await conn.execute(
                    select(_sessions).where(
                        _sessions.c.subject == subject, _sessions.c.expires_at > now
                    )
                )
                sessions = [_session(r) for r in rows]
        sessions.sort(key=lambda s: s.last_seen_at or s.created_at or now, reverse=True)
        return [
            s for s in sessions if (now - (s.last_seen_at or now)).total_seconds() <= self._idle
        ]

    async def delete_of_subject(self, subject: str, *, keep: str | None = None) -> int:
        """Sign ``subject`` out everywhere (but the session ``keep``, an ``id_hash``)."""
        condition = _sessions.c.subject == subject
        if keep is not None:
            condition = condition & (_sessions.c.id_hash != keep)
        with db_errors("session"):
            async with self._engine.begin() as conn:
                result = await conn.execute(delete(_sessions).where(condition))
        return int(result.rowcount or 0)

    async def delete(self, session: BrowserSession) -> None:
        with db_errors("session"):
            async with self._engine.begin() as conn:
                await conn.execute(delete(_sessions).where(_sessions.c.id_hash == session.id_hash))
