"""Encryption at rest, schema: users' wrapped data keys, sealed columns beside the plain ones,
and audit links that erasure can clear.

Revision ID: 0006_sealed_storage
Revises: 0005_counsellor_presence
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_sealed_storage"
down_revision: str | Sequence[str] | None = "0005_counsellor_presence"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AUDIT_LINKS = (
    ("escalations", ("user_id", "session_id", "message_id")),
    ("counsellor_reads", ("session_id",)),
)


def upgrade() -> None:
    op.create_table(
        "user_keys",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("master_key_id", sa.String(length=16), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_keys")),
    )
    op.create_index(op.f("ix_user_keys_master_key_id"), "user_keys", ["master_key_id"])
    # The plain columns stay until 0007 has sealed every row and drops them.
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("text_sealed", sa.LargeBinary(), nullable=True))
        batch.alter_column("text", existing_type=sa.Text(), nullable=True)
    with op.batch_alter_table("user_events") as batch:
        batch.add_column(sa.Column("payload_sealed", sa.LargeBinary(), nullable=True))
        batch.alter_column("payload", existing_type=sa.Text(), nullable=True)
    for table, columns in _AUDIT_LINKS:
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(column, existing_type=sa.String(length=36), nullable=True)


def downgrade() -> None:
    for table, columns in _AUDIT_LINKS:
        for column in columns:
            # The earlier schema has no way to say "erased"; an empty id stands for it.
            op.execute(sa.text(f"UPDATE {table} SET {column} = '' WHERE {column} IS NULL"))
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(column, existing_type=sa.String(length=36), nullable=False)
    with op.batch_alter_table("user_events") as batch:
        batch.alter_column("payload", existing_type=sa.Text(), nullable=False)
        batch.drop_column("payload_sealed")
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("text", existing_type=sa.Text(), nullable=False)
        batch.drop_column("text_sealed")
    op.drop_index(op.f("ix_user_keys_master_key_id"), table_name="user_keys")
    op.drop_table("user_keys")
