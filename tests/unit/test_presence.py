"""Who answers a conversation, as stored (`counsellor_presence`): one counsellor at a time, the
grace period, and what a deleted session takes with it (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from haven.errors import AlreadyJoined, NotFound
from haven.presence import Presence, current
from haven.storage import Store
from haven.storage.migrate import upgrade

NOW = datetime.now(UTC)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    upgrade(database_url)
    async with Store.from_url(database_url) as store:
        yield store


async def _people(store: Store) -> tuple[str, str, str, str]:
    """A person with a session, and two counsellors: (person, session, cara, otto)."""
    person = await store.create_user("ana", "hash")
    session = await store.create_session(person.id)
    cara = await store.create_user("cara", "hash", role="counsellor")
    otto = await store.create_user("otto", "hash", role="counsellor")
    return person.id, session.id, cara.id, otto.id


def test_a_grace_period_that_ran_out_hands_the_conversation_back() -> None:
    leaving = Presence.COUNSELLOR_LEAVING
    assert current(leaving, NOW + timedelta(seconds=1), NOW) is leaving
    assert current(leaving, NOW, NOW) is Presence.ASSISTANT_ANSWERING
    present = Presence.COUNSELLOR_PRESENT
    assert current(present, None, NOW) is present


async def test_one_counsellor_at_a_time_and_the_same_one_may_join_again(store: Store) -> None:
    person, session, cara, otto = await _people(store)
    first = await store.presence.join(person, session, cara)
    assert first.state is Presence.COUNSELLOR_PRESENT
    with pytest.raises(AlreadyJoined):
        await store.presence.join(person, session, otto)
    again = await store.presence.join(person, session, cara)
    assert again.joined_at == first.joined_at
    assert [r.session_id for r in await store.presence.of_user(person)] == [session]
    assert [r.session_id for r in await store.presence.of_counsellor(cara)] == [session]
    assert await store.presence.of_counsellor(otto) == []
    assert await store.presence.joined_by([session]) == {session: "cara"}


async def test_another_counsellor_may_join_once_the_grace_period_ran_out(store: Store) -> None:
    person, session, cara, otto = await _people(store)
    await store.presence.join(person, session, cara)
    leaving = Presence.COUNSELLOR_LEAVING
    # The store reads the real clock, so the grace period is set from it, not from import time.
    now = datetime.now(UTC)
    assert await store.presence.set_state(session, cara, leaving, now + timedelta(minutes=1))
    with pytest.raises(AlreadyJoined):
        await store.presence.join(person, session, otto)
    assert await store.presence.set_state(session, cara, leaving, now - timedelta(seconds=1))
    assert await store.presence.joined_by([session]) == {}
    taken = await store.presence.join(person, session, otto)
    assert taken.counsellor_id == otto and taken.state is Presence.COUNSELLOR_PRESENT
    # Cara's presence is gone: nothing of hers can be moved any more.
    assert not await store.presence.set_state(session, cara, Presence.COUNSELLOR_PRESENT)
    assert not await store.presence.leave(session, cara)
    assert await store.presence.leave(session, otto)
    assert await store.presence.get(session) is None


async def test_a_deleted_session_takes_its_presence_and_cannot_be_joined(store: Store) -> None:
    person, session, cara, _ = await _people(store)
    await store.presence.join(person, session, cara)
    await store.delete_session(person, session)
    assert await store.presence.get(session) is None
    with pytest.raises(NotFound):
        await store.presence.join(person, session, cara)


async def test_counsellor_messages_are_stored_with_their_author(store: Store) -> None:
    person, session, cara, _ = await _people(store)
    await store.add_message(person, session, "user", "hello")
    await store.add_message(person, session, "counsellor", "I'm here.", author_id=cara)
    stored = await store.list_messages(person, session)
    assert [(m.role, m.text, m.author_id) for m in stored] == [
        ("user", "hello", None),
        ("counsellor", "I'm here.", cara),
    ]
