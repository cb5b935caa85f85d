"""A failed write's error is logged with its traceback; it must not quote what was written."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from haven.storage.database import create_engine


async def test_a_failed_statements_error_does_not_quote_its_parameters(database_url: str) -> None:
    secret = f"what a person wrote {uuid.uuid4().hex}"
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
            await conn.execute(sa.text("INSERT INTO notes VALUES (1, 'first')"))
            with pytest.raises(sa.exc.IntegrityError) as failed:
                await conn.execute(
                    sa.text("INSERT INTO notes VALUES (:id, :body)"), {"id": 1, "body": secret}
                )
    finally:
        await engine.dispose()
    assert "notes" in str(failed.value)  # the statement is still named, for the operator
    assert secret not in str(failed.value)
