"""Encryption at rest, data: seals every stored message text and event frame, then drops the
plain columns.

Sealing commits after every batch (`haven.storage.backfill`): interrupted, it keeps what it
sealed, and running the migration again goes on from there. It needs the master
key (`HAVEN_MASTER_KEY`, or in development the generated one) only when there are rows to seal.
Offline (`--sql`) it cannot seal, so it leaves the plain columns in place.

Revision ID: 0007_seal_plaintext
Revises: 0006_sealed_storage
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from haven.storage import backfill
from haven.storage.master_key import MasterKeys, configured_master_keys

revision: str = "0007_seal_plaintext"
down_revision: str | Sequence[str] | None = "0006_sealed_storage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _master_keys() -> MasterKeys:
    given = context.config.attributes.get("master_keys")
    return given if isinstance(given, MasterKeys) else configured_master_keys()


def _commit_so_far() -> None:
    """Commits the migration's transaction so far (0006 and its version stamp included) and
    goes on in a new one, as alembic's own `autocommit_block` does on entry. That block cannot
    serve: it keeps one transaction open for its whole length on SQLite (Haven's engine emits
    BEGIN itself)."""
    migration = op.get_context()
    transaction = migration._transaction
    if transaction is None:  # not in a transaction of alembic's: nothing to split
        return
    transaction.commit()
    migration._transaction = op.get_bind().begin()


def upgrade() -> None:
    if context.is_offline_mode():
        op.execute("-- 0007: sealing needs the master key and the rows: run it online")
        return
    backfill.seal_plaintext(op.get_bind(), _master_keys, _commit_so_far)
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("text")
        batch.alter_column("text_sealed", existing_type=sa.LargeBinary(), nullable=False)
    with op.batch_alter_table("user_events") as batch:
        batch.drop_column("payload")
        batch.alter_column("payload_sealed", existing_type=sa.LargeBinary(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("text", sa.Text(), nullable=True))
        batch.alter_column("text_sealed", existing_type=sa.LargeBinary(), nullable=True)
    with op.batch_alter_table("user_events") as batch:
        batch.add_column(sa.Column("payload", sa.Text(), nullable=True))
        batch.alter_column("payload_sealed", existing_type=sa.LargeBinary(), nullable=True)
    backfill.unseal_all(op.get_bind(), _master_keys())
