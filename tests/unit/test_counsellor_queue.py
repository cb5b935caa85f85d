"""The counsellors' queue read from the escalation audit, and the audit of their reads (SQLite
and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from haven.storage import Store
from haven.storage.migrate import upgrade
from haven.storage.tables import Escalation, User

NOW = datetime.now(UTC)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    upgrade(database_url)
    async with Store.from_url(database_url) as store:
        yield store


async def _escalate(store: Store, session_id: str, user_id: str, level: str, ago: float) -> None:
    record = await store.audit.record_escalation(
        user_id=user_id,
        session_id=session_id,
        message_id="m",
        risk_level=level,
        scores={},
        model_id="fake",
        model_version="1",
        raised_by=None,
        action="resources",
    )
    async with store.engine.begin() as conn:
        await conn.execute(
            update(Escalation)
            .where(Escalation.id == record.id)
            .values(created_at=NOW - timedelta(minutes=ago))
        )


async def _conversation(store: Store, username: str) -> tuple[str, str]:
    user = await store.create_user(username, "hash")
    return user.id, (await store.create_session(user.id)).id


async def test_queue_is_most_urgent_first_then_most_recent(store: Store) -> None:
    sessions = {}
    for name, level, ago in [
        ("old-high", "high", 50),
        ("unknown", "unknown", 1),
        ("new-high", "high", 5),
        ("critical", "critical", 300),
    ]:
        user_id, session_id = await _conversation(store, name)
        await _escalate(store, session_id, user_id, level, ago)
        sessions[session_id] = name
    queue = await store.queue.escalated_since(NOW - timedelta(hours=24))
    assert [sessions[e.session_id] for e in queue] == [
        "critical",
        "new-high",
        "old-high",
        "unknown",
    ]
    assert [e.risk_level for e in queue] == ["critical", "high", "high", "unknown"]


async def test_a_conversation_shows_its_most_urgent_level_and_its_last_escalation(
    store: Store,
) -> None:
    user_id, session_id = await _conversation(store, "ana")
    await _escalate(store, session_id, user_id, "critical", 60)
    await _escalate(store, session_id, user_id, "high", 2)
    (entry,) = await store.queue.escalated_since(NOW - timedelta(hours=24))
    assert entry.risk_level == "critical"
    assert abs(entry.last_escalation_at - (NOW - timedelta(minutes=2))) < timedelta(seconds=1)


async def test_old_lower_and_deleted_escalations_are_not_queued(store: Store) -> None:
    user_id, old = await _conversation(store, "old")
    await _escalate(store, old, user_id, "critical", 25 * 60)
    user_id, medium = await _conversation(store, "medium")
    await _escalate(store, medium, user_id, "medium", 1)
    user_id, deleted = await _conversation(store, "deleted")
    await _escalate(store, deleted, user_id, "critical", 1)
    await store.delete_session(user_id, deleted)
    assert await store.queue.escalated_since(NOW - timedelta(hours=24)) == []


async def test_display_name_stands_in_for_the_username_when_set(store: Store) -> None:
    user_id, session_id = await _conversation(store, "ana")
    await _escalate(store, session_id, user_id, "high", 1)
    (entry,) = await store.queue.escalated_since(NOW - timedelta(hours=24))
    assert entry.display_name == "ana"
    async with store.engine.begin() as conn:
        await conn.execute(update(User).where(User.id == user_id).values(display_name="A."))
    (entry,) = await store.queue.escalated_since(NOW - timedelta(hours=24))
    assert entry.display_name == "A."


async def test_reads_are_recorded_per_counsellor_and_session(store: Store) -> None:
    await store.queue.record_reads("c1", ["s1", "s2"], "queue")
    await store.queue.record_reads("c2", [], "queue")
    await store.queue.record_reads("c2", ["s1"], "queue")
    assert [(r.session_id, r.action) for r in await store.queue.reads("c1")] == [
        ("s1", "queue"),
        ("s2", "queue"),
    ]
    assert [r.counsellor_id for r in await store.queue.reads()].count("c2") == 1


async def test_reads_can_be_limited_to_a_window(store: Store) -> None:
    await store.queue.record_reads("c1", ["s1"], "queue")
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert len(await store.queue.reads(since=NOW - timedelta(minutes=1), until=later)) == 1
    assert await store.queue.reads(since=later) == []


def test_escalations_reads_lists_who_read_which_conversation(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from haven.escalations import main

    upgrade(database_url)

    async def seed() -> str:
        async with Store.from_url(database_url) as store:
            counsellor = await store.create_user("cara", "hash", role="counsellor")
            await store.queue.record_reads(counsellor.id, ["s-1", "s-2"], "queue")
            return counsellor.id

    asyncio.run(seed())
    assert main(["reads", "--format", "json", "--database-url", database_url]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["counsellor"], r["session_id"], r["action"]) for r in rows] == [
        ("cara", "s-1", "queue"),
        ("cara", "s-2", "queue"),
    ]
    assert main(["reads", "--database-url", database_url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["at", "counsellor", "session_id", "action"] and len(table) == 3


def test_escalations_reads_refuses_a_missing_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from haven.escalations import main

    url = f"sqlite+aiosqlite:///{tmp_path / 'none.db'}"
    assert main(["reads", "--database-url", url]) == 1
    assert "no database" in capsys.readouterr().err
