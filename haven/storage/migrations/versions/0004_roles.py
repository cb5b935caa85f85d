"""Account roles and display names; the audit of counsellors' reads.

Revision ID: 0004_roles
Revises: 0003_auth_throttle
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_roles"
down_revision: str | Sequence[str] | None = "0003_auth_throttle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        # Existing accounts become `user`: nobody gains a role by migrating.
        batch.add_column(
            sa.Column("role", sa.String(length=16), server_default="user", nullable=False)
        )
        batch.add_column(sa.Column("display_name", sa.Text(), nullable=True))
        batch.create_check_constraint(
            op.f("ck_users_role"), "role IN ('user', 'counsellor', 'admin')"
        )
    op.create_table(
        "counsellor_reads",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("counsellor_id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_counsellor_reads")),
    )
    for column in ("counsellor_id", "session_id", "created_at"):
        op.create_index(op.f(f"ix_counsellor_reads_{column}"), "counsellor_reads", [column])


def downgrade() -> None:
    for column in ("counsellor_id", "session_id", "created_at"):
        op.drop_index(op.f(f"ix_counsellor_reads_{column}"), table_name="counsellor_reads")
    op.drop_table("counsellor_reads")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("ck_users_role"), type_="check")
        batch.drop_column("display_name")
        batch.drop_column("role")
