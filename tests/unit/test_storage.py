"""Store, schema and migrations, each test on a fresh SQLite file and on a fresh PostgreSQL
database (tests/conftest.py: `database_url`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Connection

import haven.storage.store as store_module
from haven.errors import SessionNotFound, UsernameTaken
from haven.risk import RiskLevel
from haven.storage import Store
from haven.storage.database import BUSY_TIMEOUT_MS, create_engine
from haven.storage.migrate import alembic_config, upgrade
from haven.storage.tables import Base, ChatSession, Message, User
from tests.conftest import SQLITE_ONLY


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    upgrade(database_url)  # for SQLite into a folder that does not exist yet: upgrade creates it
    return database_url


@pytest.fixture
async def store(migrated_url: str) -> AsyncIterator[Store]:
    store = Store.from_url(migrated_url)
    yield store
    await store.close()


async def _user_id(store: Store, username: str = "alice") -> str:
    return (await store.create_user(username, "hash")).id


# Schema and migrations


def _schema_diff(conn: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


async def test_migrated_schema_matches_the_orm(store: Store) -> None:
    async with store.engine.connect() as conn:
        assert await conn.run_sync(_schema_diff) == []


async def test_upgrade_at_head_changes_nothing(migrated_url: str) -> None:
    upgrade(migrated_url)  # from inside a running event loop, as here, too
    head = ScriptDirectory.from_config(alembic_config(migrated_url)).get_current_head()
    engine = create_engine(migrated_url)
    async with engine.connect() as conn:
        versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    await engine.dispose()
    assert [row[0] for row in versions] == [head]


# `messages` as 0001 created it: the ORM class now has the sealed column instead of `text`.
_MESSAGES_0001 = sa.table(
    "messages",
    *(sa.column(name) for name in ("id", "session_id", "user_id", "seq", "role", "text")),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def test_upgrade_and_downgrade_keep_the_rows_of_the_first_revision(database_url: str) -> None:
    """0002 adds NOT NULL columns to tables that hold rows (SQLite rebuilds them: batch mode)."""
    upgrade(database_url, "0001")
    ids = {"user": str(uuid.uuid4()), "session": str(uuid.uuid4()), "message": str(uuid.uuid4())}
    at = datetime(2025, 1, 1, tzinfo=UTC)

    async def seed() -> None:
        engine = create_engine(database_url)
        async with engine.begin() as conn:  # only the columns 0001 has
            await conn.execute(
                insert(User).values(
                    id=ids["user"],
                    username="Ana",
                    username_key="ana",
                    password_hash="h",
                    created_at=at,
                )
            )
            await conn.execute(
                insert(ChatSession).values(id=ids["session"], user_id=ids["user"], created_at=at)
            )
            await conn.execute(
                insert(_MESSAGES_0001).values(
                    id=ids["message"],
                    session_id=ids["session"],
                    user_id=ids["user"],
                    seq=1,
                    role="user",
                    text="kept",
                    created_at=at,
                )
            )
        await engine.dispose()

    async def check() -> None:
        async with Store.from_url(database_url) as store:
            user = await store.get_user(ids["user"])
            assert user is not None and user.username == "Ana" and user.locale is None
            [message] = await store.list_messages(ids["user"], ids["session"])
            assert (message.id, message.text, message.created_at) == (ids["message"], "kept", at)

    asyncio.run(seed())
    upgrade(database_url)
    asyncio.run(check())

    async def reserve() -> tuple[int, int]:
        async with Store.from_url(database_url) as store:
            return await store.events.reserve(ids["user"], 10)

    assert asyncio.run(reserve()) == (0, 10)  # the new counter starts at its server default
    command.downgrade(alembic_config(database_url), "0001")
    upgrade(database_url)
    asyncio.run(check())


def test_offline_postgresql_migration_renders(capsys: pytest.CaptureFixture[str]) -> None:
    config = alembic_config("postgresql+asyncpg://haven:secret@db.invalid/haven")
    command.upgrade(config, "head", sql=True)
    sql = capsys.readouterr().out
    assert "CREATE TABLE messages" in sql
    assert "TIMESTAMP WITH TIME ZONE" in sql
    assert "ON DELETE CASCADE" in sql


@SQLITE_ONLY
async def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(store: Store) -> None:
    async with store.engine.connect() as conn:
        pragmas = {
            name: (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
            for name in ("journal_mode", "busy_timeout", "foreign_keys")
        }
    assert pragmas == {"journal_mode": "wal", "busy_timeout": BUSY_TIMEOUT_MS, "foreign_keys": 1}


# Users


async def test_created_user_is_found_by_id_and_by_username(store: Store) -> None:
    created = await store.create_user("Alice", "argon2-hash")
    assert created.username == "Alice"
    assert created.password_hash == "argon2-hash"
    assert created.created_at.tzinfo is not None
    assert await store.get_user(created.id) == created
    assert await store.get_user_by_username("Alice") == created
    assert await store.get_user_by_username("ALICE") == created


async def test_duplicate_username_is_taken(store: Store) -> None:
    await store.create_user("alice", "hash")
    with pytest.raises(UsernameTaken):
        await store.create_user("alice", "other-hash")


@pytest.mark.parametrize("variant", ["Alice", "ALICE", "\uff41lice"])  # last: fullwidth "a"
async def test_username_differing_only_in_case_or_width_is_taken(
    store: Store, variant: str
) -> None:
    await store.create_user("alice", "hash")
    with pytest.raises(UsernameTaken):
        await store.create_user(variant, "other-hash")


async def test_unknown_user_is_none(store: Store) -> None:
    assert await store.get_user(str(uuid.uuid4())) is None
    assert await store.get_user("not-a-uuid") is None
    assert await store.get_user_by_username("nobody") is None


async def test_existing_user_ids_leaves_out_erased_and_unknown_ones_past_one_batch(
    store: Store,
) -> None:
    kept = await store.create_user("kept", "hash")
    erased = await store.create_user("erased", "hash")
    assert await store.erasure.erase(erased.id) is not None
    # More ids than one statement takes, the account that exists last of all.
    unknown = [str(uuid.uuid4()) for _ in range(1200)]
    asked = [erased.id, *unknown, "not-a-uuid", kept.id, kept.id]
    assert await store.existing_user_ids(asked) == {kept.id}
    assert await store.existing_user_ids([]) == set()


async def test_timestamps_read_back_as_utc(store: Store) -> None:
    user_id = await _user_id(store)
    session = await store.create_session(user_id)
    await store.add_message(user_id, session.id, "user", "hello")
    user = await store.get_user(user_id)
    assert user is not None
    [message] = await store.list_messages(user_id, session.id)
    [listed] = await store.list_sessions(user_id)
    for stamp in (user.created_at, listed.created_at, message.created_at):
        assert stamp.utcoffset() == timedelta(0)


# Sessions


async def test_sessions_are_listed_newest_first(store: Store) -> None:
    user_id = await _user_id(store)
    created = [await store.create_session(user_id) for _ in range(3)]
    assert await store.list_sessions(user_id) == created[::-1]


async def test_session_for_unknown_user_is_refused(store: Store) -> None:
    with pytest.raises(LookupError):
        await store.create_session(str(uuid.uuid4()))


async def test_other_users_session_is_not_found(store: Store) -> None:
    alice, mallory = await _user_id(store, "alice"), await _user_id(store, "mallory")
    session = await store.create_session(alice)
    await store.add_message(alice, session.id, "user", "private")

    assert await store.list_sessions(mallory) == []
    with pytest.raises(SessionNotFound):
        await store.get_session(mallory, session.id)
    with pytest.raises(SessionNotFound):
        await store.list_messages(mallory, session.id)
    with pytest.raises(SessionNotFound):
        await store.add_message(mallory, session.id, "user", "intrusion")
    with pytest.raises(SessionNotFound):
        await store.delete_session(mallory, session.id)

    # Nothing the other user tried changed the owner's session.
    assert await store.get_session(alice, session.id) == session
    assert [m.text for m in await store.list_messages(alice, session.id)] == ["private"]


@pytest.mark.parametrize("session_id", ["not-a-uuid", "", "../../etc/passwd", "1' OR '1'='1"])
async def test_invalid_session_id_is_not_found(store: Store, session_id: str) -> None:
    user_id = await _user_id(store)
    with pytest.raises(SessionNotFound):
        await store.get_session(user_id, session_id)
    with pytest.raises(SessionNotFound):
        await store.delete_session(user_id, session_id)
    with pytest.raises(SessionNotFound):
        await store.add_message(user_id, session_id, "user", "hello")
    with pytest.raises(SessionNotFound):
        await store.list_messages(user_id, session_id)


async def test_unknown_session_is_not_found(store: Store) -> None:
    user_id = await _user_id(store)
    with pytest.raises(SessionNotFound):
        await store.get_session(user_id, str(uuid.uuid4()))


async def test_deleting_a_session_deletes_its_messages(store: Store) -> None:
    user_id = await _user_id(store)
    doomed, kept = await store.create_session(user_id), await store.create_session(user_id)
    for session in (doomed, kept):
        await store.add_message(user_id, session.id, "user", "hello")
        await store.add_message(user_id, session.id, "assistant", "hi")

    await store.delete_session(user_id, doomed.id)

    assert await store.list_sessions(user_id) == [kept]
    with pytest.raises(SessionNotFound):
        await store.get_session(user_id, doomed.id)
    with pytest.raises(SessionNotFound):
        await store.delete_session(user_id, doomed.id)
    async with store.engine.connect() as conn:
        count = select(func.count()).select_from(Message).where(Message.session_id == doomed.id)
        assert (await conn.execute(count)).scalar_one() == 0
    assert len(await store.list_messages(user_id, kept.id)) == 2


# Messages


async def test_messages_are_listed_oldest_first_even_with_equal_timestamps(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen = datetime(2025, 1, 1, tzinfo=UTC)
    monkeypatch.setattr(store_module, "_now", lambda: frozen)
    user_id = await _user_id(store)
    session = await store.create_session(user_id)
    texts = [f"message {i}" for i in range(12)]
    for i, body in enumerate(texts):
        await store.add_message(user_id, session.id, "user" if i % 2 == 0 else "assistant", body)

    listed = await store.list_messages(user_id, session.id)

    assert [m.text for m in listed] == texts
    assert {m.created_at for m in listed} == {frozen}


async def test_limit_returns_the_last_messages_oldest_first(store: Store) -> None:
    user_id = await _user_id(store)
    session = await store.create_session(user_id)
    for i in range(5):
        await store.add_message(user_id, session.id, "user", str(i))

    assert [m.text for m in await store.list_messages(user_id, session.id, limit=3)] == [
        "2",
        "3",
        "4",
    ]
    assert len(await store.list_messages(user_id, session.id, limit=50)) == 5
    assert await store.list_messages(user_id, session.id, limit=0) == []
    with pytest.raises(ValueError):
        await store.list_messages(user_id, session.id, limit=-1)


async def test_message_fields_round_trip(store: Store) -> None:
    user_id = await _user_id(store)
    session = await store.create_session(user_id)
    stored = await store.add_message(
        user_id, session.id, "assistant", "Tell me more.", intent="explore", risk_level="medium"
    )

    [listed] = await store.list_messages(user_id, session.id)

    assert listed == stored
    assert listed.session_id == session.id
    assert listed.role == "assistant"
    assert listed.intent == "explore"
    assert listed.risk_level is RiskLevel.MEDIUM


async def test_bad_role_or_risk_level_is_refused_and_stores_nothing(store: Store) -> None:
    user_id = await _user_id(store)
    session = await store.create_session(user_id)
    with pytest.raises(ValueError):
        await store.add_message(user_id, session.id, "system", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await store.add_message(user_id, session.id, "user", "x", risk_level="extreme")
    assert await store.list_messages(user_id, session.id) == []


async def test_caller_chosen_message_id_is_kept(store: Store) -> None:
    user_id = await _user_id(store)
    session = await store.create_session(user_id)
    chosen = str(uuid.uuid4())
    stored = await store.add_message(user_id, session.id, "assistant", "hi", message_id=chosen)
    assert stored.id == chosen
    assert [m.id for m in await store.list_messages(user_id, session.id)] == [chosen]
    with pytest.raises(ValueError):
        await store.add_message(user_id, session.id, "assistant", "hi", message_id="nope")


async def test_nul_is_stored_as_a_replacement_character_on_every_backend(store: Store) -> None:
    # PostgreSQL refuses NUL in text; a model's reply holding one must still be stored.
    user_id = await _user_id(store)
    session = await store.create_session(user_id)
    stored = await store.add_message(user_id, session.id, "assistant", "a\x00b")
    assert stored.text == "a\ufffdb"
    assert [m.text for m in await store.list_messages(user_id, session.id)] == ["a\ufffdb"]
    with pytest.raises(ValueError):
        await store.add_message(user_id, session.id, "user", "hi", client_message_id="c\x00")
    assert len(await store.list_messages(user_id, session.id)) == 1


async def test_risk_level_can_be_set_after_assessment(store: Store) -> None:
    user_id = await _user_id(store)
    session = await store.create_session(user_id)
    stored = await store.add_message(user_id, session.id, "user", "hello")
    await store.set_risk_level(stored.id, "high")
    [listed] = await store.list_messages(user_id, session.id)
    assert listed.risk_level is RiskLevel.HIGH


async def test_concurrent_messages_are_all_stored_in_one_order(store: Store) -> None:
    user_id = await _user_id(store)
    session = await store.create_session(user_id)
    stored = await asyncio.gather(
        *(store.add_message(user_id, session.id, "user", str(i)) for i in range(20))
    )
    listed = await store.list_messages(user_id, session.id)
    assert sorted(m.id for m in listed) == sorted(m.id for m in stored)
    async with store.engine.connect() as conn:
        seqs = (
            await conn.execute(select(Message.seq).where(Message.session_id == session.id))
        ).scalars()
        assert sorted(seqs) == list(range(1, 21))


async def test_message_is_visible_to_another_store_as_soon_as_it_is_added(
    store: Store, migrated_url: str
) -> None:
    user_id = await _user_id(store)
    session = await store.create_session(user_id)
    await store.add_message(user_id, session.id, "user", "committed")
    async with Store.from_url(migrated_url) as other:
        assert [m.text for m in await other.list_messages(user_id, session.id)] == ["committed"]


async def test_data_survives_closing_and_reopening_the_store(migrated_url: str) -> None:
    first = Store.from_url(migrated_url)
    user = await first.create_user("alice", "hash")
    session = await first.create_session(user.id)
    message = await first.add_message(user.id, session.id, "user", "remember me")
    await first.close()

    async with Store.from_url(migrated_url) as second:
        assert await second.get_user_by_username("alice") == user
        assert await second.list_sessions(user.id) == [session]
        assert await second.list_messages(user.id, session.id) == [message]
