"""Resume log, token revocation, escalation audit, idempotent messages, user locale.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("locale", sa.String(length=16), nullable=True))
        batch.add_column(
            sa.Column("event_seq_reserved", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("event_log_floor", sa.BigInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("client_message_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("status", sa.String(length=16), nullable=True))
        batch.create_unique_constraint(
            op.f("uq_messages_user_id_client_message_id"), ["user_id", "client_message_id"]
        )
    op.create_table(
        "user_events",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["chat_sessions.id"],
            name=op.f("fk_user_events_session_id_chat_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_events_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "seq", name=op.f("pk_user_events")),
    )
    op.create_index(op.f("ix_user_events_session_id"), "user_events", ["session_id"])
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_revoked_tokens")),
    )
    op.create_index(op.f("ix_revoked_tokens_expires_at"), "revoked_tokens", ["expires_at"])
    op.create_table(
        "escalations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("risk_level", sa.String(length=16), nullable=False),
        sa.Column("scores", sa.Text(), nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("raised_by", sa.Text(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalations")),
    )
    op.create_index(op.f("ix_escalations_user_id"), "escalations", ["user_id"])
    op.create_index(op.f("ix_escalations_created_at"), "escalations", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_escalations_created_at"), table_name="escalations")
    op.drop_index(op.f("ix_escalations_user_id"), table_name="escalations")
    op.drop_table("escalations")
    op.drop_index(op.f("ix_revoked_tokens_expires_at"), table_name="revoked_tokens")
    op.drop_table("revoked_tokens")
    op.drop_index(op.f("ix_user_events_session_id"), table_name="user_events")
    op.drop_table("user_events")
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint(op.f("uq_messages_user_id_client_message_id"), type_="unique")
        batch.drop_column("status")
        batch.drop_column("client_message_id")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("event_log_floor")
        batch.drop_column("event_seq_reserved")
        batch.drop_column("locale")
