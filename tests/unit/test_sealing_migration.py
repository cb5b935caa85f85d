"""Migration 0007 seals the plain text of databases from before encryption, in batches that are
each committed: interrupted, it keeps what it sealed, and running it again finishes the job.
On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from haven.storage import Store, backfill
from haven.storage.crypto import new_key
from haven.storage.database import create_engine
from haven.storage.master_key import MasterKeys
from haven.storage.migrate import upgrade

BEFORE = "0005_counsellor_presence"
AT = datetime(2026, 1, 1, tzinfo=UTC)

_users = sa.table(
    "users",
    *(sa.column(c) for c in ("id", "username", "username_key", "password_hash")),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
_sessions = sa.table(
    "chat_sessions",
    sa.column("id"),
    sa.column("user_id"),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
_messages = sa.table(
    "messages",
    *(sa.column(c) for c in ("id", "session_id", "user_id", "seq", "role", "text")),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
_events = sa.table(
    "user_events",
    *(sa.column(c) for c in ("user_id", "seq", "session_id", "payload")),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def _seed(url: str) -> dict[str, Any]:
    """Two people's conversations written by a version without encryption."""
    plan: dict[str, Any] = {}

    async def run() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            for name in ("ana", "bo"):
                user_id, session_id = str(uuid.uuid4()), str(uuid.uuid4())
                await conn.execute(
                    sa.insert(_users).values(
                        id=user_id,
                        username=name,
                        username_key=name,
                        password_hash="h",
                        created_at=AT,
                    )
                )
                await conn.execute(
                    sa.insert(_sessions).values(id=session_id, user_id=user_id, created_at=AT)
                )
                texts = [f"{name} plain message {n}" for n in range(4)]
                for seq, text in enumerate(texts, start=1):
                    await conn.execute(
                        sa.insert(_messages).values(
                            id=str(uuid.uuid4()),
                            session_id=session_id,
                            user_id=user_id,
                            seq=seq,
                            role="user" if seq % 2 else "assistant",
                            text=text,
                            created_at=AT,
                        )
                    )
                await conn.execute(
                    sa.insert(_events).values(
                        user_id=user_id,
                        seq=1,
                        session_id=session_id,
                        payload=f'{{"text": "{texts[0]}"}}',
                        created_at=datetime.now(UTC),
                    )
                )
                plan[name] = {"user": user_id, "session": session_id, "texts": texts}
        await engine.dispose()

    asyncio.run(run())
    return plan


def _version_and_plain_count(url: str) -> tuple[str, int]:
    async def run() -> tuple[str, int]:
        engine = create_engine(url)
        async with engine.connect() as conn:
            version = (
                await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            ).scalar_one()
            plain = (
                await conn.execute(sa.text("SELECT count(*) FROM messages WHERE text IS NOT NULL"))
            ).scalar_one()
        await engine.dispose()
        return str(version), int(plain)

    return asyncio.run(run())


def _read_back(url: str, keys: MasterKeys, plan: dict[str, Any]) -> None:
    async def run() -> None:
        async with Store.from_url(url, keys) as store:
            for person in plan.values():
                messages = await store.list_messages(person["user"], person["session"])
                assert [m.text for m in messages] == person["texts"]
                found = await store.events.recent(
                    person["user"], newer_than=datetime(2000, 1, 1, tzinfo=UTC), limit=10
                )
                assert [e.payload for e in found.events] == [f'{{"text": "{person["texts"][0]}"}}']
            async with store.engine.connect() as conn:
                rows = []
                for table in ("messages", "user_events"):
                    rows += (await conn.execute(sa.text(f"SELECT * FROM {table}"))).all()
            dump = " ".join(map(repr, rows))
            assert rows and "plain message" not in dump

    asyncio.run(run())


def test_interrupted_sealing_keeps_its_batches_and_a_rerun_finishes(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade(database_url, BEFORE)
    plan = _seed(database_url)
    keys = MasterKeys(new_key())
    monkeypatch.setattr(backfill, "BATCH_SIZE", 3)
    sealed_batches = 0
    seal_messages = backfill._seal_messages

    def interrupted_after_one_batch(*args: Any) -> int:
        nonlocal sealed_batches
        if sealed_batches == 1:
            raise KeyboardInterrupt("the operator pressed Ctrl-C")
        sealed_batches += 1
        return seal_messages(*args)

    monkeypatch.setattr(backfill, "_seal_messages", interrupted_after_one_batch)
    with pytest.raises(KeyboardInterrupt):
        upgrade(database_url, master_keys=keys)
    # 0006 is in, and the first batch of three stayed sealed.
    assert _version_and_plain_count(database_url) == ("0006_sealed_storage", 8 - 3)

    monkeypatch.setattr(backfill, "_seal_messages", seal_messages)
    upgrade(database_url, master_keys=keys)
    _read_back(database_url, keys, plan)


def test_a_database_without_plain_rows_migrates_without_a_master_key(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HAVEN_MASTER_KEY", raising=False)
    monkeypatch.setenv("HAVEN_ENVIRONMENT", "production")  # no development key either
    upgrade(database_url)
