"""The authorization server: clients, codes, refresh-token families, opaque access
tokens, revoked jtis, device codes, pushed requests, assertion jtis, sessions,
consents; OpenID Connect claims on users.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oauth_access_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_oauth_access_tokens")),
        sa.UniqueConstraint("jti", name=op.f("uq_oauth_access_tokens_jti")),
    )
    op.create_index(
        op.f("ix_oauth_access_tokens_client_id"), "oauth_access_tokens", ["client_id"], unique=False
    )
    op.create_index(
        op.f("ix_oauth_access_tokens_expires_at"),
        "oauth_access_tokens",
        ["expires_at"],
        unique=False,
    )

    op.create_table(
        "oauth_assertion_jtis",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_oauth_assertion_jtis")),
    )
    op.create_index(
        op.f("ix_oauth_assertion_jtis_expires_at"),
        "oauth_assertion_jtis",
        ["expires_at"],
        unique=False,
    )

    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=True),
        sa.Column("auth_method", sa.String(length=32), nullable=False),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("post_logout_redirect_uris", sa.JSON(), nullable=False),
        sa.Column("grant_types", sa.JSON(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("jwks", sa.JSON(), nullable=True),
        sa.Column("require_par", sa.Boolean(), nullable=False),
        sa.Column("token_format", sa.String(length=16), nullable=False),
        sa.Column("access_token_ttl", sa.Integer(), nullable=True),
        sa.Column("refresh_token_ttl", sa.Integer(), nullable=True),
        sa.Column("id_token_alg", sa.String(length=16), nullable=False),
        sa.Column("may_introspect", sa.Boolean(), nullable=False),
        sa.Column("skip_consent", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_oauth_clients")),
    )
    op.create_table(
        "oauth_revoked_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_oauth_revoked_tokens")),
    )
    op.create_index(
        op.f("ix_oauth_revoked_tokens_revoked_at"),
        "oauth_revoked_tokens",
        ["revoked_at"],
        unique=False,
    )

    op.create_table(
        "oauth_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("auth_time", sa.Integer(), nullable=True),
        sa.Column("acr", sa.String(length=64), nullable=True),
        sa.Column("amr", sa.JSON(), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_oauth_sessions")),
    )
    op.create_index(
        op.f("ix_oauth_sessions_expires_at"), "oauth_sessions", ["expires_at"], unique=False
    )

    op.create_table(
        "oauth_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=True),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("auth_time", sa.Integer(), nullable=False),
        sa.Column("acr", sa.String(length=64), nullable=True),
        sa.Column("amr", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("issued_jti", sa.String(length=64), nullable=True),
        sa.Column("issued_exp", sa.DateTime(timezone=True), nullable=True),
        sa.Column("family_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.client_id"],
            name=op.f("fk_oauth_codes_client_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_oauth_codes")),
    )
    op.create_index(op.f("ix_oauth_codes_client_id"), "oauth_codes", ["client_id"], unique=False)

    op.create_table(
        "oauth_consents",
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.client_id"],
            name=op.f("fk_oauth_consents_client_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subject", "client_id", name=op.f("pk_oauth_consents")),
    )
    op.create_table(
        "oauth_device_codes",
        sa.Column("device_hash", sa.String(length=64), nullable=False),
        sa.Column("user_code_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("last_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("approved", sa.Boolean(), nullable=True),
        sa.Column("auth_time", sa.Integer(), nullable=True),
        sa.Column("amr", sa.JSON(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.client_id"],
            name=op.f("fk_oauth_device_codes_client_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_hash", name=op.f("pk_oauth_device_codes")),
        sa.UniqueConstraint("user_code_hash", name=op.f("uq_oauth_device_codes_user_code_hash")),
    )
    op.create_index(
        op.f("ix_oauth_device_codes_client_id"), "oauth_device_codes", ["client_id"], unique=False
    )

    op.create_table(
        "oauth_pushed_requests",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.client_id"],
            name=op.f("fk_oauth_pushed_requests_client_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_oauth_pushed_requests")),
    )
    op.create_index(
        op.f("ix_oauth_pushed_requests_client_id"),
        "oauth_pushed_requests",
        ["client_id"],
        unique=False,
    )

    op.create_table(
        "oauth_refresh_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("auth_time", sa.Integer(), nullable=True),
        sa.Column("acr", sa.String(length=64), nullable=True),
        sa.Column("amr", sa.JSON(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idle_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("access_jti", sa.String(length=64), nullable=True),
        sa.Column("access_exp", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.client_id"],
            name=op.f("fk_oauth_refresh_tokens_client_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_oauth_refresh_tokens")),
    )
    op.create_index(
        op.f("ix_oauth_refresh_tokens_client_id"),
        "oauth_refresh_tokens",
        ["client_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_oauth_refresh_tokens_family_id"),
        "oauth_refresh_tokens",
        ["family_id"],
        unique=False,
    )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=320), nullable=True))
        batch_op.add_column(
            sa.Column("email_verified", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("name", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("name")
        batch_op.drop_column("email_verified")
        batch_op.drop_column("email")

    op.drop_index(op.f("ix_oauth_refresh_tokens_family_id"), table_name="oauth_refresh_tokens")
    op.drop_index(op.f("ix_oauth_refresh_tokens_client_id"), table_name="oauth_refresh_tokens")

    op.drop_table("oauth_refresh_tokens")
    op.drop_index(op.f("ix_oauth_pushed_requests_client_id"), table_name="oauth_pushed_requests")

    op.drop_table("oauth_pushed_requests")
    op.drop_index(op.f("ix_oauth_device_codes_client_id"), table_name="oauth_device_codes")

    op.drop_table("oauth_device_codes")
    op.drop_table("oauth_consents")
    op.drop_index(op.f("ix_oauth_codes_client_id"), table_name="oauth_codes")

    op.drop_table("oauth_codes")
    op.drop_index(op.f("ix_oauth_sessions_expires_at"), table_name="oauth_sessions")

    op.drop_table("oauth_sessions")
    op.drop_index(op.f("ix_oauth_revoked_tokens_revoked_at"), table_name="oauth_revoked_tokens")

    op.drop_table("oauth_revoked_tokens")
    op.drop_table("oauth_clients")
    op.drop_index(op.f("ix_oauth_assertion_jtis_expires_at"), table_name="oauth_assertion_jtis")

    op.drop_table("oauth_assertion_jtis")
    op.drop_index(op.f("ix_oauth_access_tokens_expires_at"), table_name="oauth_access_tokens")
    op.drop_index(op.f("ix_oauth_access_tokens_client_id"), table_name="oauth_access_tokens")

    op.drop_table("oauth_access_tokens")
