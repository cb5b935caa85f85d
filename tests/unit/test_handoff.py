"""The person's side of a hand-off without Ray or sockets: a counsellor whose grace period ran
out while the timer had not fired yet is told they were taken out when another counsellor
joins, before the person hears of the new one (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from actors.handoff import Handoff
from haven.presence import Presence
from haven.protocol import CounsellorJoined, CounsellorLeft, ServerEventBase, SessionHistory
from haven.settings import Settings
from haven.storage import Store
from haven.storage.migrate import upgrade


def _nothing_unsafe(text: str, *, at_risk: bool = False, distressed: bool = False) -> str | None:
    return None


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    await asyncio.to_thread(upgrade, database_url)
    async with Store.from_url(database_url) as store:
        yield store


async def test_the_previous_counsellor_hears_of_a_take_over_after_their_grace_period(
    store: Store, tmp_path: Path
) -> None:
    person = await store.create_user("ana", "hash")
    session = await store.create_session(person.id)
    cara = await store.create_user("cara", "hash", role="counsellor")
    otto = await store.create_user("otto", "hash", role="counsellor")
    seen: list[ServerEventBase] = []
    relayed: list[tuple[str, ServerEventBase]] = []
    handoff = Handoff(
        person.id,
        settings=Settings(data_dir=tmp_path, counsellor_grace_s=60.0),
        store=store,
        output_screen=_nothing_unsafe,
        broadcast=seen.append,
        relay=lambda who, events: relayed.extend((who, e) for e in events),
    )
    await handoff.load("ana")
    await handoff.join(session.id, cara.id)
    await handoff.away(cara.id)  # her last socket closed: the grace period runs
    # The minute passes, but the timer has not fired yet when Otto joins.
    past = datetime.now(UTC) - timedelta(seconds=1)
    assert await store.presence.set_state(session.id, cara.id, Presence.COUNSELLOR_LEAVING, past)
    seen.clear()
    relayed.clear()
    history = await handoff.join(session.id, otto.id)
    assert isinstance(history, SessionHistory)
    left = [(who, e) for who, e in relayed if isinstance(e, CounsellorLeft)]
    assert [(who, e.reason, e.counsellor.display_name) for who, e in left] == [
        (cara.id, "timed_out", "cara")
    ]
    # The person hears first that Cara left, then that Otto joined.
    assert [type(e) for e in seen] == [CounsellorLeft, CounsellorJoined]
    assert seen[1].counsellor.display_name == "otto"  # type: ignore[attr-defined]
    assert handoff.joined_by(session.id) == "otto"
    record = await store.presence.get(session.id)
    assert record is not None and record.counsellor_id == otto.id
    handoff.close()
