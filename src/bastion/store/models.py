"""SQLAlchemy models. Secrets are never stored in clear: keys as keyed hashes,
passwords as argon2id hashes, private signing keys encrypted with the keyring.

Every timestamp is a timezone-aware UTC ``datetime`` (:class:`UTCDateTime`), on SQLite too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints, so later migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that only accepts aware values and always returns UTC.

    SQLite has no time zones and hands back naive values; they were written as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # OpenID Connect claims (revision 0002).
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The public part of the key (shown in listings and audit logs); unique.
    # A unique constraint (not only a unique index) so ``replaced_by`` can reference it.
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    # HMAC-SHA256 of the whole key under the keyring's api-key key, hex.
    key_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    replaced_by: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("api_keys.key_id"), nullable=True
    )


class SigningKey(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(32), index=True)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Private JWK as JSON, AES-GCM encrypted by Keyring.encrypt(purpose="signing-key").
    private_jwk_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Signs from ``active_from``; stays published until ``retire_after``.
    active_from: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    retire_after: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# --- The authorization server (revision 0002). Every secret is stored as an HMAC. ---

_CLIENT_FK = "oauth_clients.client_id"


class OAuthClient(Base):
    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    # HMAC-SHA256 of the secret under Keyring.client_secret_hmac, hex; NULL for public
    # and private_key_jwt clients.
    secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    auth_method: Mapped[str] = mapped_column(String(32))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    require_par: Mapped[bool] = mapped_column(Boolean, default=False)
    token_format: Mapped[str] = mapped_column(String(16), default="jwt")
    access_token_ttl: Mapped[int | None] = mapped_column(Integer, nullable=True)
    refresh_token_ttl: Mapped[int | None] = mapped_column(Integer, nullable=True)
    id_token_alg: Mapped[str] = mapped_column(String(16), default="RS256")
    may_introspect: Mapped[bool] = mapped_column(Boolean, default=False)
    skip_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OAuthCode(Base):
    __tablename__ = "oauth_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey(_CLIENT_FK, ondelete="CASCADE"), index=True
    )
    subject: Mapped[str] = mapped_column(String(255))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text, nullable=True)
    code_challenge: Mapped[str] = mapped_column(String(128))
    auth_time: Mapped[int] = mapped_column(Integer)
    acr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # What the code was exchanged for, so a second use can revoke it (RFC 6749 §4.1.2).
    issued_jti: Mapped[str | None] = mapped_column(String(64), nullable=True)
    issued_exp: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    family_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class OAuthRefreshToken(Base):
    __tablename__ = "oauth_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey(_CLIENT_FK, ondelete="CASCADE"), index=True
    )
    subject: Mapped[str] = mapped_column(String(255))
    scope: Mapped[str] = mapped_column(Text)
    auth_time: Mapped[int | None] = mapped_column(Integer, nullable=True)
    acr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())  # the family's absolute end
    idle_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The access token issued with this refresh token (revoked with the family).
    access_jti: Mapped[str | None] = mapped_column(String(64), nullable=True)
    access_exp: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OAuthAccessToken(Base):
    """Opaque access tokens (clients with ``token_format: opaque``); JWTs are not stored."""

    __tablename__ = "oauth_access_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    claims: Mapped[dict[str, Any]] = mapped_column(JSON)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class OAuthRevokedToken(Base):
    """Revoked access-token ``jti`` values, kept until the token would have expired."""

    __tablename__ = "oauth_revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class OAuthDeviceCode(Base):
    __tablename__ = "oauth_device_codes"

    device_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey(_CLIENT_FK, ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    interval: Mapped[int] = mapped_column(Integer)
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(255), nullable=True)
    approved: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    auth_time: Mapped[int | None] = mapped_column(Integer, nullable=True)
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OAuthPushedRequest(Base):
    """RFC 9126 pushed authorization requests, by the random part of ``request_uri``."""

    __tablename__ = "oauth_pushed_requests"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey(_CLIENT_FK, ondelete="CASCADE"), index=True
    )
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OAuthAssertionJti(Base):
    """``jti`` of client assertions already seen (RFC 7523 §3 replay protection)."""

    __tablename__ = "oauth_assertion_jtis"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256(client, jti)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class OAuthSession(Base):
    """A browser session at the authorization server (login, consent, device pages)."""

    __tablename__ = "oauth_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    auth_time: Mapped[int | None] = mapped_column(Integer, nullable=True)
    acr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    csrf: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # Revision 0003: idle timeout, the session list on the account page.
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(255), nullable=True)


class OAuthConsent(Base):
    __tablename__ = "oauth_consents"
    __table_args__ = (PrimaryKeyConstraint("subject", "client_id"),)

    subject: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(64), ForeignKey(_CLIENT_FK, ondelete="CASCADE"))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- Identity: second factors, passkeys, sign-in activity, federation, lockout (0003). ---


class UserTotp(Base):
    """A user's TOTP secret (RFC 6238), encrypted with the keyring; counts once confirmed."""

    __tablename__ = "user_totp"

    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    # Keyring.encrypt(secret, purpose="totp-secret").
    secret_encrypted: Mapped[str] = mapped_column(Text)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The highest time step accepted so far: every code is single use (RFC 6238 §5.2).
    last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UserRecoveryCode(Base):
    """Recovery codes as HMACs under the keyring; each one single use."""

    __tablename__ = "user_recovery_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class UserPasskey(Base):
    """A WebAuthn credential (passkey) of a user."""

    __tablename__ = "user_passkeys"

    credential_id: Mapped[str] = mapped_column(String(1400), primary_key=True)  # base64url
    subject: Mapped[str] = mapped_column(String(255), index=True)
    user_handle: Mapped[str] = mapped_column(String(128), index=True)  # base64url, random
    name: Mapped[str] = mapped_column(String(100))
    public_key: Mapped[str] = mapped_column(Text)  # COSE key, base64url
    sign_count: Mapped[int] = mapped_column(Integer, default=0)
    aaguid: Mapped[str] = mapped_column(String(64), default="")
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    backup_eligible: Mapped[bool] = mapped_column(Boolean, default=False)
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LoginEvent(Base):
    """Sign-in activity shown on the account page (successes and failures)."""

    __tablename__ = "login_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(255), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(64))
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    place: Mapped[str] = mapped_column(String(128), default="")
    device: Mapped[str] = mapped_column(String(255), default="")


class FederatedIdentity(Base):
    """A local user linked to an account at an external OpenID provider."""

    __tablename__ = "federated_identities"
    __table_args__ = (PrimaryKeyConstraint("issuer", "external_subject"),)

    issuer: Mapped[str] = mapped_column(String(512))
    external_subject: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LoginFailure(Base):
    """Failed-login counters per account or address, for progressive throttling."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)  # "account:x" | "ip:y"
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
