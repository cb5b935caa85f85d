"""Counsellors in conversations: who is present in which session, and counsellors' messages.

Revision ID: 0005_counsellor_presence
Revises: 0004_roles
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_counsellor_presence"
down_revision: str | Sequence[str] | None = "0004_roles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("author_id", sa.String(length=36), nullable=True))
        batch.drop_constraint(op.f("ck_messages_role"), type_="check")
        batch.create_check_constraint(
            op.f("ck_messages_role"), "role IN ('user', 'assistant', 'counsellor')"
        )
    op.create_table(
        "counsellor_presence",
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("counsellor_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("grace_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["chat_sessions.id"],
            name=op.f("fk_counsellor_presence_session_id_chat_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_counsellor_presence")),
    )
    for column in ("user_id", "counsellor_id"):
        op.create_index(op.f(f"ix_counsellor_presence_{column}"), "counsellor_presence", [column])


def downgrade() -> None:
    for column in ("user_id", "counsellor_id"):
        op.drop_index(op.f(f"ix_counsellor_presence_{column}"), table_name="counsellor_presence")
    op.drop_table("counsellor_presence")
    op.execute("DELETE FROM messages WHERE role = 'counsellor'")
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint(op.f("ck_messages_role"), type_="check")
        batch.create_check_constraint(op.f("ck_messages_role"), "role IN ('user', 'assistant')")
        batch.drop_column("author_id")
