"""Identity: TOTP secrets, recovery codes, passkeys, sign-in activity, federated
identities, login-failure counters; idle-timeout and device columns on sessions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "user_totp",
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("confirmed_at", _TZ, nullable=True),
        sa.Column("last_step", sa.Integer(), nullable=True),
        sa.Column("created_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_user_totp")),
    )
    op.create_table(
        "user_recovery_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("used_at", _TZ, nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_user_recovery_codes")),
    )
    op.create_index(
        op.f("ix_user_recovery_codes_subject"), "user_recovery_codes", ["subject"], unique=False
    )
    op.create_table(
        "user_passkeys",
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("user_handle", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("sign_count", sa.Integer(), nullable=False),
        sa.Column("aaguid", sa.String(length=64), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("backup_eligible", sa.Boolean(), nullable=False),
        sa.Column("backed_up", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("last_used_at", _TZ, nullable=True),
        sa.PrimaryKeyConstraint("credential_id", name=op.f("pk_user_passkeys")),
    )
    op.create_index(op.f("ix_user_passkeys_subject"), "user_passkeys", ["subject"], unique=False)
    op.create_index(
        op.f("ix_user_passkeys_user_handle"), "user_passkeys", ["user_handle"], unique=False
    )
    op.create_table(
        "login_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("at", _TZ, nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=False),
        sa.Column("place", sa.String(length=128), nullable=False),
        sa.Column("device", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_events")),
    )
    op.create_index(op.f("ix_login_events_subject"), "login_events", ["subject"], unique=False)
    op.create_index(op.f("ix_login_events_at"), "login_events", ["at"], unique=False)
    op.create_table(
        "federated_identities",
        sa.Column("issuer", sa.String(length=512), nullable=False),
        sa.Column("external_subject", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("issuer", "external_subject", name=op.f("pk_federated_identities")),
    )
    op.create_index(
        op.f("ix_federated_identities_subject"), "federated_identities", ["subject"], unique=False
    )
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_at", _TZ, nullable=False),
        sa.Column("last_at", _TZ, nullable=False),
        sa.Column("blocked_until", _TZ, nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_failures")),
    )
    op.add_column("oauth_sessions", sa.Column("last_seen_at", _TZ, nullable=True))
    op.add_column("oauth_sessions", sa.Column("client_ip", sa.String(length=64), nullable=True))
    op.add_column("oauth_sessions", sa.Column("user_agent", sa.String(length=255), nullable=True))
    op.create_index(op.f("ix_oauth_sessions_subject"), "oauth_sessions", ["subject"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_oauth_sessions_subject"), table_name="oauth_sessions")
    with op.batch_alter_table("oauth_sessions") as batch:
        batch.drop_column("user_agent")
        batch.drop_column("client_ip")
        batch.drop_column("last_seen_at")
    op.drop_table("login_failures")
    op.drop_index(op.f("ix_federated_identities_subject"), table_name="federated_identities")
    op.drop_table("federated_identities")
    op.drop_index(op.f("ix_login_events_at"), table_name="login_events")
    op.drop_index(op.f("ix_login_events_subject"), table_name="login_events")
    op.drop_table("login_events")
    op.drop_index(op.f("ix_user_passkeys_user_handle"), table_name="user_passkeys")
    op.drop_index(op.f("ix_user_passkeys_subject"), table_name="user_passkeys")
    op.drop_table("user_passkeys")
    op.drop_index(op.f("ix_user_recovery_codes_subject"), table_name="user_recovery_codes")
    op.drop_table("user_recovery_codes")
    op.drop_table("user_totp")
