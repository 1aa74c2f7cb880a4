"""Second factors and sign-in activity in the database: TOTP secrets (encrypted),
recovery codes (HMACs), passkeys, login events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.identity import recovery
from bastion.keyring import Keyring
from bastion.model import Clock, system_clock
from bastion.store._db import db_errors, now_utc
from bastion.store.models import (
    FederatedIdentity,
    LoginEvent,
    OAuthSession,
    User,
    UserPasskey,
    UserRecoveryCode,
    UserTotp,
)

_totp = cast(Table, UserTotp.__table__)
_codes = cast(Table, UserRecoveryCode.__table__)
_passkeys = cast(Table, UserPasskey.__table__)
_events = cast(Table, LoginEvent.__table__)
_sessions = cast(Table, OAuthSession.__table__)
_links = cast(Table, FederatedIdentity.__table__)
_users = cast(Table, User.__table__)
TOTP_PURPOSE = "totp-secret"
EVENTS_KEPT = 50  # sign-in events kept per user


@dataclass(frozen=True, slots=True)
class Totp:
    secret: str = field(repr=False)
    confirmed: bool
    last_step: int | None


@dataclass(frozen=True, slots=True)
class Passkey:
    credential_id: str
    subject: str
    user_handle: str
    name: str
    public_key: str = field(repr=False)
    sign_count: int
    aaguid: str
    transports: tuple[str, ...]
    backup_eligible: bool
    backed_up: bool
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class Factors:
    """What a user can prove besides the password."""

    totp: bool = False
    passkeys: int = 0
    recovery_codes: int = 0

    @property
    def any(self) -> bool:
        return self.totp or self.passkeys > 0


@dataclass(frozen=True, slots=True)
class Event:
    at: datetime
    outcome: str
    method: str
    client_ip: str
    place: str
    device: str


def _passkey(row: Any) -> Passkey:
    return Passkey(
        credential_id=row.credential_id,
        subject=row.subject,
        user_handle=row.user_handle,
        name=row.name,
        public_key=row.public_key,
        sign_count=row.sign_count,
        aaguid=row.aaguid,
        transports=tuple(row.transports or ()),
        backup_eligible=bool(row.backup_eligible),
        backed_up=bool(row.backed_up),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


class IdentityStore:
    """Async access to the identity tables.

    Args:
        engine: the database.
        keyring: encrypts TOTP secrets and keys the recovery-code HMAC.
        clock: seconds since the epoch.
    """

    def __init__(self, engine: AsyncEngine, keyring: Keyring, *, clock: Clock = system_clock):
        self._engine = engine
        self._keyring = keyring
        self._clock = clock
        self._code_key = keyring.derive("recovery-code")

    # --- TOTP ---------------------------------------------------------------------

    async def totp(self, subject: str) -> Totp | None:
        with db_errors("totp"):
            async with self._engine.connect() as conn:
                row = (
                    await conn.execute(select(_totp).where(_totp.c.subject == subject))
                ).one_or_none()
        if row is None:
            return None
        secret = self._keyring.decrypt(row.secret_encrypted, purpose=TOTP_PURPOSE).decode()
        return Totp(secret, row.confirmed_at is not None, row.last_step)

    async def start_totp(self, subject: str, secret: str) -> None:
        """Store an unconfirmed secret (replacing an unconfirmed one; never a confirmed one)."""
        encrypted = self._keyring.encrypt(secret.encode(), purpose=TOTP_PURPOSE)
        now = now_utc(self._clock)
        with db_errors("totp"):
            async with self._engine.begin() as conn:
                await conn.execute(
                    delete(_totp).where(_totp.c.subject == subject, _totp.c.confirmed_at.is_(None))
                )
                await conn.execute(
                    insert(_totp).values(
                        subject=subject, secret_encrypted=encrypted, created_at=now
                    )
                )

    async def use_totp_step(self, subject: str, step: int, *, confirm: bool = False) -> bool:
        """Accept ``step`` once: True only if it is newer than every step accepted before
        (atomic, so two concurrent uses of one code cannot both succeed)."""
        values: dict[str, Any] = {"last_step": step}
        condition = _totp.c.confirmed_at.is_not(None)
        if confirm:
            values["confirmed_at"] = now_utc(self._clock)
            condition = _totp.c.confirmed_at.is_(None)
        with db_errors("totp"):
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    update(_totp)
                    .where(
                        _totp.c.subject == subject,
                        condition,
                        or_(_totp.c.last_step.is_(None), _totp.c.last_step < step),
                    )
                    .values(values)
                )
        return result.rowcount == 1

    async def remove_totp(self, subject: str) -> None:
        with db_errors("totp"):
            async with self._engine.begin() as conn:
                await conn.execute(delete(_totp).where(_totp.c.subject == subject))

    # --- recovery codes -------------------------------------------------------------

    async def new_recovery_codes(self, subject: str) -> list[str]:
        """Replace the user's codes with fresh ones; the clear codes are returned once."""
        codes = recovery.new_codes()
        now = now_utc(self._clock)
        with db_errors("recovery codes"):
            async with self._engine.begin() as conn:
                await conn.execute(delete(_codes).where(_codes.c.subject == subject))
                await conn.execute(
                    insert(_codes),
                    [
                        {
                            "code_hash": recovery.digest(self._code_key, c),
                            "subject": subject,
                            "created_at": now,
                        }
                        for c in codes
                    ],
                )
        return codes

    async def use_recovery_code(self, subject: str, code: str) -> bool:
        if not recovery.looks_like_code(code):
            return False
        digest = recovery.digest(self._code_key, code)
        with db_errors("recovery codes"):
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    update(_codes)
                    .where(
                        _codes.c.code_hash == digest,
                        _codes.c.subject == subject,
                        _codes.c.used_at.is_(None),
                    )
                    .values(used_at=now_utc(self._clock))
                )
        return result.rowcount == 1

    # --- passkeys -----------------------------------------------------------------

    async def passkeys(self, subject: str) -> list[Passkey]:
        with db_errors("passkeys"):
            async with self._engine.connect() as conn:
                rows = await conn.execute(
                    select(_passkeys)
                    .where(_passkeys.c.subject == subject)
                    .order_by(_passkeys.c.created_at)
                )
                return [_passkey(r) for r in rows]

    async def passkey(self, credential_id: str) -> Passkey | None:
        with db_errors("passkeys"):
            async with self._engine.connect() as conn:
                row = (
                    await conn.execute(
                        select(_passkeys).where(_passkeys.c.credential_id == credential_id)
                    )
                ).one_or_none()
        return None if row is None else _passkey(row)

    async def add_passkey(self, **values: Any) -> None:
        values.setdefault("created_at", now_utc(self._clock))
        with db_errors("passkeys"):
            async with self._engine.begin() as conn:
                await conn.execute(insert(_passkeys).values(values))

    async def passkey_used(
        self, credential_id: str, *, old_count: int, new_count: int, backed_up: bool
    ) -> bool:
        """Record a use; False when another use of the same count won the race."""
        with db_errors("passkeys"):
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    update(_passkeys)
                    .where(
                        _passkeys.c.credential_id == credential_id,
                        _passkeys.c.sign_count == old_count,
                    )
                    .values(
                        sign_count=new_count,
                        backed_up=backed_up,
                        last_used_at=now_utc(self._clock),
                    )
                )
        return result.rowcount == 1

    async def remove_passkey(self, subject: str, credential_id: str) -> bool:
        with db_errors("passkeys"):
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    delete(_passkeys).where(
                        _passkeys.c.subject == subject, _passkeys.c.credential_id == credential_id
                    )
                )
        return result.rowcount == 1

    # --- all factors --------------------------------------------------------------

    async def factors(self, subject: str) -> Factors:
        with db_errors("factors"):
            async with self._engine.connect() as conn:
                totp = await conn.scalar(
                    select(func.count())
                    .select_from(_totp)
                    .where(_totp.c.subject == subject, _totp.c.confirmed_at.is_not(None))
                )
                passkeys = await conn.scalar(
                    select(func.count())
                    .select_from(_passkeys)
                    .where(_passkeys.c.subject == subject)
                )
                codes = await conn.scalar(
                    select(func.count())
                    .select_from(_codes)
                    .where(and_(_codes.c.subject == subject, _codes.c.used_at.is_(None)))
                )
        return Factors(bool(totp), int(passkeys or 0), int(codes or 0))

    async def reset(self, subject: str) -> int:
        """Remove every second factor (TOTP, recovery codes, passkeys) of a user and end
        their browser sessions; returns how many sessions ended."""
        with db_errors("factors"):
            async with self._engine.begin() as conn:
                for table in (_totp, _codes, _passkeys):
                    await conn.execute(delete(table).where(table.c.subject == subject))
                ended = await conn.execute(delete(_sessions).where(_sessions.c.subject == subject))
        return int(ended.rowcount or 0)

    async def end_sessions(self, subject: str) -> int:
        """Delete every browser session of ``subject`` (a disabled user's too)."""
        with db_errors("sessions"):
            async with self._engine.begin() as conn:
                ended = await conn.execute(delete(_sessions).where(_sessions.c.subject == subject))
        return int(ended.rowcount or 0)

    # --- external identities ------------------------------------------------------

    async def linked_subject(self, issuer: str, external_subject: str) -> str | None:
        with db_errors("federation"):
            async with self._engine.connect() as conn:
                return await conn.scalar(
                    select(_links.c.subject).where(
                        _links.c.issuer == issuer, _links.c.external_subject == external_subject
                    )
                )

    async def link(self, issuer: str, external_subject: str, subject: str) -> None:
        """Link (or re-link) an external account to ``subject``."""
        with db_errors("federation"):
            async with self._engine.begin() as conn:
                await conn.execute(
                    delete(_links).where(
                        _links.c.issuer == issuer, _links.c.external_subject == external_subject
                    )
                )
                await conn.execute(
                    insert(_links).values(issuer=issuer, external_subject=external_subject,
                                          subject=subject, created_at=now_utc(self._clock))
                )  # fmt: skip

    async def links(self, subject: str) -> list[tuple[str, str]]:
        """``(issuer, external subject)`` of every external account linked to ``subject``."""
        with db_errors("federation"):
            async with self._engine.connect() as conn:
                rows = await conn.execute(
                    select(_links.c.issuer, _links.c.external_subject).where(
                        _links.c.subject == subject
                    )
                )
                return [(r.issuer, r.external_subject) for r in rows]

    async def unlink(self, subject: str, issuer: str) -> None:
        with db_errors("federation"):
            async with self._engine.begin() as conn:
                await conn.execute(
                    delete(_links).where(_links.c.subject == subject, _links.c.issuer == issuer)
                )

    async def user_by_verified_email(self, email: str) -> str | None:
        """The one user whose verified email is ``email`` (case-insensitive), if exactly one."""
        with db_errors("federation"):
            async with self._engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(_users.c.username).where(
                            func.lower(_users.c.email) == email.lower(),
                            _users.c.email_verified.is_(True),
                            _users.c.disabled.is_(False),
                        )
                    )
                ).all()
        return rows[0].username if len(rows) == 1 else None

    # --- sign-in activity ---------------------------------------------------------

    async def record_event(self, subject: str, **values: str) -> None:
        now = now_utc(self._clock)
        with db_errors("login events"):
            async with self._engine.begin() as conn:
                await conn.execute(insert(_events).values(subject=subject, at=now, **values))
                # Every subject's old events, not only this one's: failed sign-ins are
                # recorded under names nobody has too (the login form does the same work
                # for unknown users), and those names may never come back.
                await conn.execute(delete(_events).where(_events.c.at < now - timedelta(days=90)))

    async def events(self, subject: str, limit: int = 10) -> list[Event]:
        with db_errors("login events"):
            async with self._engine.connect() as conn:
                rows = await conn.execute(
                    select(_events)
                    .where(_events.c.subject == subject)
                    .order_by(_events.c.at.desc(), _events.c.id.desc())
                    .limit(min(limit, EVENTS_KEPT))
                )
                return [
                    Event(r.at, r.outcome, r.method, r.client_ip, r.place, r.device) for r in rows
                ]
