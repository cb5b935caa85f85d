"""Encryption at rest in the store: what reaches the database is sealed, and a sealed value that
was altered or moved is refused and reported, never returned. Each test on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select, update

from haven.errors import StoredDataUnreadable
from haven.settings import Settings
from haven.storage import Store, export
from haven.storage.crypto import Sealer, new_key, row_identity
from haven.storage.events import LoggedEvent
from haven.storage.keys import UserKeys
from haven.storage.master_key import KEY_FILE_NAME, MasterKeys, master_keys
from haven.storage.migrate import upgrade
from haven.storage.tables import Message, UserEvent, UserKey

MARKER = "marker-7f3a I have been hiding how bad it is"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    upgrade(database_url)
    store = Store.from_url(database_url, MasterKeys(new_key()))
    yield store
    await store.close()


async def _conversation(store: Store, username: str = "ana") -> tuple[str, str]:
    user = await store.create_user(username, "hash")
    session = await store.create_session(user.id)
    return user.id, session.id


# The cipher itself


def test_sealed_text_opens_only_with_its_identity_and_key() -> None:
    sealer = Sealer(new_key())
    here, there = row_identity("t", "1"), row_identity("t", "2")
    sealed = sealer.seal(MARKER, here)
    assert MARKER.encode() not in sealed
    assert sealer.open_(sealed, here, what="t[1]") == MARKER
    with pytest.raises(StoredDataUnreadable):
        sealer.open_(sealed, there, what="t[2]")
    with pytest.raises(StoredDataUnreadable):
        Sealer(new_key()).open_(sealed, here, what="t[1]")


def test_the_same_text_seals_differently_each_time() -> None:
    sealer = Sealer(new_key())
    identity = row_identity("t", "1")
    assert sealer.seal(MARKER, identity) != sealer.seal(MARKER, identity)


def test_row_identity_parts_cannot_be_shifted_between_fields() -> None:
    assert row_identity("t", "a|b", "c") != row_identity("t", "a", "b|c")
    assert row_identity("t", "ab", "c") != row_identity("t", "a", "bc")


# What reaches the database


async def test_no_plain_text_reaches_a_sql_parameter(store: Store) -> None:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append(f"{statement} {parameters!r}")

    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    user_id, session_id = await _conversation(store)
    await store.add_message(user_id, session_id, "user", MARKER, client_message_id="c1")
    await store.events.append(
        user_id, [LoggedEvent(1, datetime.now(UTC), session_id, f'{{"text": "{MARKER}"}}')]
    )
    [message] = await store.list_messages(user_id, session_id)
    recent = await store.events.recent(
        user_id, newer_than=datetime(2000, 1, 1, tzinfo=UTC), limit=5
    )
    event.remove(store.engine.sync_engine, "before_cursor_execute", record)
    assert message.text == MARKER and MARKER in recent.events[0].payload
    assert statements and not [s for s in statements if "marker-7f3a" in s]


async def test_the_stored_columns_hold_ciphertext(store: Store) -> None:
    user_id, session_id = await _conversation(store)
    await store.add_message(user_id, session_id, "user", MARKER)
    async with store.engine.connect() as conn:
        sealed = (await conn.execute(select(Message.text_sealed))).scalar_one()
        [key] = (await conn.execute(select(UserKey.wrapped_key))).scalars().all()
    assert b"marker-7f3a" not in sealed and len(sealed) > len(MARKER)
    assert len(key) == 1 + 12 + 32 + 16  # the wrapped data key: header, nonce, key, tag


# Tampering


async def _set_sealed(store: Store, message_id: str, value: bytes) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            update(Message).where(Message.id == message_id).values(text_sealed=value)
        )


async def _sealed_of(store: Store, message_id: str) -> bytes:
    async with store.engine.connect() as conn:
        stmt = select(Message.text_sealed).where(Message.id == message_id)
        return bytes((await conn.execute(stmt)).scalar_one())


async def test_a_flipped_byte_is_refused_and_reported_without_the_text(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    user_id, session_id = await _conversation(store)
    stored = await store.add_message(user_id, session_id, "user", MARKER)
    sealed = bytearray(await _sealed_of(store, stored.id))
    sealed[-5] ^= 0x01
    await _set_sealed(store, stored.id, bytes(sealed))
    with caplog.at_level(logging.ERROR), pytest.raises(StoredDataUnreadable):
        await store.list_messages(user_id, session_id)
    assert f"messages[{stored.id}]" in caplog.text
    assert "marker-7f3a" not in caplog.text


@pytest.mark.parametrize("other_user", [False, True], ids=["same-user", "other-user"])
async def test_a_ciphertext_moved_to_another_row_is_refused(store: Store, other_user: bool) -> None:
    user_id, session_id = await _conversation(store)
    first = await store.add_message(user_id, session_id, "user", MARKER)
    if other_user:
        user_id, session_id = await _conversation(store, "bo")
    second = await store.add_message(user_id, session_id, "user", "an ordinary day")
    await _set_sealed(store, second.id, await _sealed_of(store, first.id))
    with pytest.raises(StoredDataUnreadable):
        await store.list_messages(user_id, session_id)


async def test_a_tampered_event_is_left_out_of_the_replay_and_counted(store: Store) -> None:
    user_id, session_id = await _conversation(store)
    now = datetime.now(UTC)
    await store.events.append(
        user_id,
        [LoggedEvent(seq, now, session_id, f'{{"n": {seq}}}') for seq in (1, 2, 3)],
    )
    async with store.engine.begin() as conn:
        two = select(UserEvent.payload_sealed).where(UserEvent.seq == 2).scalar_subquery()
        await conn.execute(update(UserEvent).where(UserEvent.seq == 3).values(payload_sealed=two))
    found = await store.events.recent(
        user_id, newer_than=datetime(2000, 1, 1, tzinfo=UTC), limit=10
    )
    assert [e.seq for e in found.events] == [1, 2]
    assert found.refused_up_to == 3


async def test_without_the_users_data_key_nothing_opens(store: Store) -> None:
    user_id, session_id = await _conversation(store)
    await store.add_message(user_id, session_id, "user", MARKER)
    async with store.engine.begin() as conn:
        await conn.execute(UserKey.__table__.delete())
    store.keys.forget(user_id)
    with pytest.raises(StoredDataUnreadable):
        await store.list_messages(user_id, session_id)


async def test_another_master_key_cannot_open_the_data(store: Store, database_url: str) -> None:
    user_id, session_id = await _conversation(store)
    await store.add_message(user_id, session_id, "user", MARKER)
    async with Store.from_url(database_url, MasterKeys(new_key())) as stranger:
        with pytest.raises(StoredDataUnreadable):
            await stranger.list_messages(user_id, session_id)


# The master key's configuration


def _key() -> str:
    return base64.b64encode(new_key()).decode()


def test_outside_development_the_settings_refuse_to_load_without_a_master_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HAVEN_MASTER_KEY", raising=False)
    with pytest.raises(ValueError, match="HAVEN_MASTER_KEY"):
        Settings(environment="production", jwt_secret="s" * 48)


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_malformed_master_key_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(ValueError) as refused:
        Settings(master_key=value)
    messages = " ".join(str(e["msg"]) for e in refused.value.errors())  # type: ignore[attr-defined]
    assert "HAVEN_MASTER_KEY" in messages and value not in messages


def test_in_development_one_key_is_generated_once_with_mode_0600(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HAVEN_MASTER_KEY", raising=False)
    settings = Settings(environment="development", data_dir=tmp_path)
    first, second = master_keys(settings), master_keys(settings)
    assert first.current.id == second.current.id
    path = tmp_path / KEY_FILE_NAME
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_configured_key_and_the_previous_one_both_unwrap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, new = _key(), _key()
    before = master_keys(Settings(master_key=old))
    key_id, wrapped = before.wrap("u1", b"k" * 32)
    during = master_keys(Settings(master_key=new, master_key_previous=old))
    assert during.current.id != key_id
    assert during.unwrap("u1", key_id, wrapped) == b"k" * 32
    with pytest.raises(StoredDataUnreadable):
        master_keys(Settings(master_key=new)).unwrap("u1", key_id, wrapped)


async def test_export_pages_through_a_long_session_in_order(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "PAGE", 2)
    user_id, session_id = await _conversation(store)
    texts = [f"message {n}" for n in range(7)]
    for text in texts:
        await store.add_message(user_id, session_id, "user", text)
    document = json.loads("".join([piece async for piece in store.export.export(user_id)]))
    assert [m["text"] for m in document["sessions"][0]["messages"]] == texts


async def test_a_tampered_wrapped_data_key_is_refused(store: Store) -> None:
    user_id, session_id = await _conversation(store)
    await store.add_message(user_id, session_id, "user", MARKER)
    async with store.engine.begin() as conn:
        wrapped = bytearray((await conn.execute(select(UserKey.wrapped_key))).scalar_one())
        wrapped[20] ^= 0x80
        await conn.execute(update(UserKey).values(wrapped_key=bytes(wrapped)))
    store.keys.forget(user_id)
    with pytest.raises(StoredDataUnreadable):
        await store.list_messages(user_id, session_id)


async def test_a_key_cached_by_another_process_stops_opening_once_its_time_is_up(
    store: Store,
) -> None:
    # Another replica read the person's messages; then the person was erased elsewhere.
    user_id, session_id = await _conversation(store)
    await store.add_message(user_id, session_id, "user", MARKER)
    now = [0.0]
    other = UserKeys(store.engine, store.keys.master, ttl_s=300.0, clock=lambda: now[0])
    assert await other.for_reading(user_id, "m") is not None
    async with store.engine.begin() as conn:
        await conn.execute(UserKey.__table__.delete())
    now[0] = 299.0
    assert await other.for_reading(user_id, "m") is not None  # within its time: still cached
    now[0] = 300.0
    with pytest.raises(StoredDataUnreadable):
        await other.for_reading(user_id, "m")
