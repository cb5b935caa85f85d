"""Master key rotation: an interrupted rotation run again ends with every message readable
under the new key only; no message is re-encrypted. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from haven.cli import main
from haven.errors import StoredDataUnreadable
from haven.storage import Store, rotation
from haven.storage.crypto import new_key
from haven.storage.master_key import MasterKeys, key_id
from haven.storage.migrate import upgrade
from haven.storage.tables import Message, UserKey

OLD, NEW = new_key(), new_key()


async def _people(url: str, count: int) -> dict[tuple[str, str], list[str]]:
    """`count` people, each with a conversation, written under the old master key."""
    written: dict[tuple[str, str], list[str]] = {}
    async with Store.from_url(url, MasterKeys(OLD)) as store:
        for n in range(count):
            user = await store.create_user(f"person{n}", "hash")
            session = await store.create_session(user.id)
            texts = [f"person {n} says {i}" for i in range(2)]
            for text in texts:
                await store.add_message(user.id, session.id, "user", text)
            written[(user.id, session.id)] = texts
    return written


async def _state(url: str) -> tuple[dict[str, int], list[bytes]]:
    """How many data keys each master key wraps, and every sealed message as stored."""
    async with Store.from_url(url, MasterKeys(NEW)) as store, store.engine.connect() as conn:
        ids = list((await conn.execute(select(UserKey.master_key_id))).scalars())
        sealed = list(
            (await conn.execute(select(Message.text_sealed).order_by(Message.id))).scalars()
        )
    return {k: ids.count(k) for k in set(ids)}, [bytes(s) for s in sealed]


async def _read_all(url: str, keys: MasterKeys, written: dict[tuple[str, str], list[str]]) -> None:
    async with Store.from_url(url, keys) as store:
        for (user_id, session_id), texts in written.items():
            assert [m.text for m in await store.list_messages(user_id, session_id)] == texts


def test_an_interrupted_rotation_run_again_leaves_everything_under_the_new_key_only(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade(database_url)
    written = asyncio.run(_people(database_url, 5))
    _, sealed_before = asyncio.run(_state(database_url))
    during = MasterKeys(NEW, (OLD,))
    monkeypatch.setattr(rotation, "BATCH_SIZE", 2)
    rewrap = rotation._rewrap
    batches = 0

    async def interrupted(*args: Any) -> int:
        nonlocal batches
        if batches == 1:
            raise ConnectionError("the database went away")
        batches += 1
        return await rewrap(*args)

    monkeypatch.setattr(rotation, "_rewrap", interrupted)

    async def rotate() -> rotation.RotationReport:
        async with Store.from_url(database_url, during) as store:
            return await rotation.rotate(store.engine, during)

    with pytest.raises(ConnectionError):
        asyncio.run(rotate())
    counts, _ = asyncio.run(_state(database_url))
    assert counts == {key_id(NEW): 2, key_id(OLD): 3}
    asyncio.run(_read_all(database_url, during, written))  # the service reads throughout

    monkeypatch.setattr(rotation, "_rewrap", rewrap)
    report = asyncio.run(rotate())
    assert (report.rewrapped, report.remaining, report.unreadable) == (3, 0, [])
    counts, sealed_after = asyncio.run(_state(database_url))
    assert counts == {key_id(NEW): 5}
    assert sealed_after == sealed_before  # messages were not re-encrypted
    asyncio.run(_read_all(database_url, MasterKeys(NEW), written))
    with pytest.raises(StoredDataUnreadable):
        asyncio.run(_read_all(database_url, MasterKeys(OLD), written))


def test_keys_rotate_command_uses_the_current_and_previous_keys(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    upgrade(database_url)
    written = asyncio.run(_people(database_url, 2))
    monkeypatch.setenv("HAVEN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HAVEN_MASTER_KEY", base64.b64encode(NEW).decode())
    monkeypatch.delenv("HAVEN_MASTER_KEY_PREVIOUS", raising=False)
    # Without the old key nothing can be re-wrapped, and the command says so.
    assert main(["keys", "rotate", "--database-url", database_url]) == 1
    assert "HAVEN_MASTER_KEY_PREVIOUS" in capsys.readouterr().err
    monkeypatch.setenv("HAVEN_MASTER_KEY_PREVIOUS", base64.b64encode(OLD).decode())
    assert main(["keys", "rotate", "--database-url", database_url]) == 0
    assert "re-wrapped 2 data keys" in capsys.readouterr().out
    assert main(["keys", "rotate", "--database-url", database_url]) == 0  # again: nothing to do
    asyncio.run(_read_all(database_url, MasterKeys(NEW), written))
