"""Retention: with `retention_days=1` and the clock moved forward, conversations with no message
for a day are gone (with their messages and event log) and recent ones stay; by hand
(`haven retention run`) and by the service's periodic task. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

import haven.storage.store as store_module
from haven.cli import main
from haven.errors import SessionNotFound
from haven.storage import Store, retention
from haven.storage.events import LoggedEvent
from haven.storage.migrate import upgrade
from haven.storage.tables import UserEvent

START = datetime.now(UTC)
LATER = START + timedelta(days=2)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    upgrade(database_url)
    store = Store.from_url(database_url)
    yield store
    await store.close()


async def _at(moment: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_now", lambda: moment)


async def _scene(store: Store, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Ana talked two days ago in `old`, and in `revived` then and again now; `fresh` is new."""
    user = await store.create_user("ana", "hash")
    await _at(START, monkeypatch)
    old = await store.create_session(user.id)
    revived = await store.create_session(user.id)
    for session in (old, revived):
        await store.add_message(user.id, session.id, "user", "two days ago")
    await store.events.append(user.id, [LoggedEvent(1, START, old.id, "{}")])
    await _at(LATER, monkeypatch)
    await store.add_message(user.id, revived.id, "user", "today")
    fresh = await store.create_session(user.id)
    return {"user": user.id, "old": old.id, "revived": revived.id, "fresh": fresh.id}


async def _sessions(store: Store, user_id: str) -> set[str]:
    return {s.id for s in await store.list_sessions(user_id)}


async def test_a_day_of_retention_deletes_what_is_older_and_keeps_the_rest(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene = await _scene(store, monkeypatch)
    deleted = await retention.delete_expired(store.engine, retention.cutoff(LATER, days=1))
    assert deleted == [retention.Deleted(scene["old"], scene["user"])]
    assert await _sessions(store, scene["user"]) == {scene["revived"], scene["fresh"]}
    with pytest.raises(SessionNotFound):
        await store.list_messages(scene["user"], scene["old"])
    assert [m.text for m in await store.list_messages(scene["user"], scene["revived"])] == [
        "two days ago",
        "today",
    ]
    async with store.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(UserEvent))).scalar() == 0
    # Without the clock moved, nothing is old enough.
    assert await retention.delete_expired(store.engine, retention.cutoff(START, days=1)) == []


async def test_the_periodic_task_deletes_expired_conversations(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene = await _scene(store, monkeypatch)
    gone: list[str] = []
    passed = asyncio.Event()

    async def deleted(sessions: list[retention.Deleted]) -> None:
        gone.extend(s.session_id for s in sessions)
        passed.set()

    task = asyncio.create_task(
        retention.run_periodically(
            store.engine, 1, interval_s=0.01, clock=lambda: LATER, on_deleted=deleted
        )
    )
    try:
        await asyncio.wait_for(passed.wait(), 10)
    finally:
        task.cancel()
    assert gone == [scene["old"]]
    assert await _sessions(store, scene["user"]) == {scene["revived"], scene["fresh"]}


def test_retention_run_command(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    upgrade(database_url)
    monkeypatch.setenv("HAVEN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HAVEN_RETENTION_DAYS", raising=False)

    async def seed() -> str:
        async with Store.from_url(database_url) as store:
            user = await store.create_user("ana", "hash")
            monkeypatch.setattr(store_module, "_now", lambda: START - timedelta(days=3))
            session = await store.create_session(user.id)
            await store.add_message(user.id, session.id, "user", "long ago")
            return user.id

    user_id = asyncio.run(seed())
    assert main(["retention", "run", "--database-url", database_url]) == 0
    assert "every conversation is kept" in capsys.readouterr().out
    monkeypatch.setenv("HAVEN_RETENTION_DAYS", "1")
    assert main(["retention", "run", "--database-url", database_url]) == 0
    assert "deleted 1 conversations" in capsys.readouterr().out

    async def left() -> set[str]:
        async with Store.from_url(database_url) as store:
            return await _sessions(store, user_id)

    assert asyncio.run(left()) == set()
