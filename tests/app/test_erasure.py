"""`DELETE /me`: the account and everything it held are gone, its sockets closed with 4010, its
name unknown to login; the audit report counts the same. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from sqlalchemy import MetaData, select
from starlette.testclient import WebSocketDisconnect

from deployments.gateway import forget_expired
from haven.cli_privacy import erase_user
from haven.errors import StoredDataUnreadable
from haven.storage import retention
from haven.storage.crypto import Sealer
from haven.storage.sealed import event_identity, message_identity
from haven.storage.store import Store
from haven.storage.tables import Message, UserEvent
from tests.app.conftest import SECRET, Harness, SettingsFactory, build_harness
from tests.app.wire import connect, send, until
from tests.fakes import CRISIS_WORD
from tests.rest_client import PASSWORD


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _erase(harness: Harness, token: str, password: str = PASSWORD) -> Any:
    return harness.client.request(
        "DELETE", "/me", headers=_auth(token), json={"password": password}
    )


def _short_token(user_id: str, lifetime_s: float) -> str:
    now = time.time()
    claims = {"sub": user_id, "iat": int(now), "exp": now + lifetime_s, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _run(harness: Harness, work: Any) -> Any:
    """Runs a coroutine on the app's own loop (the store's connections belong to it)."""
    return harness.client.portal.call(lambda: work)  # type: ignore[union-attr]


async def _all_rows(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table in the database, as reflected from it (not from the ORM)."""
    metadata = MetaData()
    async with store.engine.connect() as conn:
        await conn.run_sync(metadata.reflect)
        return {
            name: [dict(r) for r in (await conn.execute(select(table))).mappings()]
            for name, table in metadata.tables.items()
        }


def _report(harness: Harness) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return _run(
        harness,
        harness.services.store.audit.report(
            since=now - timedelta(days=1), until=now + timedelta(days=1), period="day"
        ),
    )


def _conversation(harness: Harness, token: str, texts: list[str]) -> str:
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        for text in texts:
            send(ws, session_id, text)
            until(ws, "assistant_message_complete")
    return session_id


def test_delete_me_erases_every_row_of_the_person_and_keeps_the_audit_counts(
    harness: Harness,
) -> None:
    store = harness.services.store
    ana = harness.register("erased_ana")
    bo = harness.register("kept_bo")
    ana_id = harness.services.tokens.verify(ana).user_id
    ana_sessions = [
        _conversation(harness, ana, ["first words", f"{CRISIS_WORD} I can't go on"]),
        _conversation(harness, ana, ["another day"]),
    ]
    bo_session = _conversation(harness, bo, [f"{CRISIS_WORD} bo's own words"])
    ana_key: Sealer = _run(harness, store.keys.for_reading(ana_id, "test"))
    before = _report(harness)
    assert sum(int(row["count"]) for row in before) >= 2

    erased = _erase(harness, ana)
    assert erased.status_code == 204, erased.text

    rows = _run(harness, _all_rows(store))
    linked = [ana_id, *ana_sessions, "erased_ana"]
    for table, table_rows in rows.items():
        for row in table_rows:
            values = " ".join(map(str, row.values()))
            assert not [v for v in linked if v in values], (table, row)
    # Nothing left opens with the erased person's data key.
    for row in rows["messages"]:
        identity = message_identity(row["id"], row["user_id"], row["session_id"], row["role"])
        with pytest.raises(StoredDataUnreadable):
            ana_key.open_(row["text_sealed"], identity, what="test")
    for row in rows["user_events"]:
        identity = event_identity(row["user_id"], row["seq"], row["session_id"])
        with pytest.raises(StoredDataUnreadable):
            ana_key.open_(row["payload_sealed"], identity, what="test")
    assert _report(harness) == before

    # The name is unknown to login, exactly like a name never registered.
    gone = harness.client.post("/auth/login", json={"username": "erased_ana", "password": PASSWORD})
    never = harness.client.post("/auth/login", json={"username": "never_was", "password": PASSWORD})
    assert (
        (gone.status_code, gone.json()) == (never.status_code, never.json()) == (401, never.json())
    )
    assert harness.client.get("/sessions", headers=_auth(ana)).status_code == 401
    # The other person's conversation is untouched.
    assert [m["role"] for m in harness.messages(bo, bo_session)] == ["user", "assistant"]


def test_delete_me_closes_every_socket_of_the_account_with_4010(harness: Harness) -> None:
    ana = harness.register("ana")
    bo = harness.register("bob")
    with (
        connect(harness, ana) as phone,
        connect(harness, ana) as laptop,
        connect(harness, bo) as other,
    ):
        for ws in (phone, laptop, other):
            until(ws, "connection")
        assert _erase(harness, ana).status_code == 204
        for ws in (phone, laptop):
            error = until(ws, "error")[-1]
            assert error["code"] == "account_deleted"
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 4010
        other.send_json({"type": "ping"})
        assert until(other, "pong")[-1]["type"] == "pong"


def test_account_erased_by_operator_closes_its_open_sockets_4010(
    app_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = app_settings(account_check_s=0.5)
    for harness in build_harness(settings):
        ana_id = harness.services.tokens.verify(harness.register("ana")).user_id
        bo = harness.register("bob")
        # Without the check these would close only when their token ends: 4002, not 4010.
        ana = _short_token(ana_id, lifetime_s=20)
        with (
            connect(harness, ana) as phone,
            connect(harness, ana) as laptop,
            connect(harness, bo) as other,
        ):
            for ws in (phone, laptop, other):
                until(ws, "connection")
            # The operator's command, on its own connection to the database.
            url = settings.resolved_database_url
            assert asyncio.run(erase_user(settings, url, "ana")) == 0
            erased_at = time.monotonic()
            for ws in (phone, laptop):
                error = until(ws, "error")[-1]
                assert error["code"] == "account_deleted"
                with pytest.raises(WebSocketDisconnect) as closed:
                    ws.receive_json()
                assert closed.value.code == 4010
            # One check interval, with room for a loaded machine.
            assert time.monotonic() - erased_at < settings.account_check_s + 3.0
            other.send_json({"type": "ping"})
            assert until(other, "pong")[-1]["type"] == "pong"
    assert "erased account" in capsys.readouterr().err


def test_a_conversation_deleted_by_retention_cannot_be_continued_on_an_open_socket(
    harness: Harness,
) -> None:
    ana = harness.register("ana")
    old, other = harness.new_session(ana), harness.new_session(ana)
    with connect(harness, ana) as ws:
        # Retention deletes behind the socket's back; `other` has a message after the cutoff,
        # so it stays.
        deleted = _old_and_recent_then_retention(harness, ws, old, other)
        assert [d.session_id for d in deleted] == [old]
        send(ws, old, "still there?")
        error = until(ws, "error")[-1]
        assert error["code"] == "session_not_found"
        ws.send_json({"type": "ping"})
        assert until(ws, "pong")[-1]["type"] == "pong"  # the socket itself stays open
    assert harness.client.get(f"/sessions/{old}/messages", headers=_auth(ana)).status_code == 404
    assert [m["role"] for m in harness.messages(ana, other)] == ["user", "assistant"]


async def _delete_older_than(harness: Harness, cutoff: datetime) -> list[retention.Deleted]:
    return await retention.delete_expired(harness.services.store.engine, cutoff)


def _old_and_recent_then_retention(
    harness: Harness, ws: Any, old: str, recent: str
) -> list[retention.Deleted]:
    """A turn in `old`, a cutoff, a turn in `recent`; then retention deletes up to the cutoff."""
    until(ws, "connection")
    send(ws, old, "said long ago")
    until(ws, "assistant_message_complete")
    cutoff = datetime.now(UTC)
    send(ws, recent, "later words")
    until(ws, "assistant_message_complete")
    deleted: list[retention.Deleted] = _run(harness, _delete_older_than(harness, cutoff))
    return deleted


def test_a_conversation_deleted_by_retention_is_not_replayed_by_a_resume(
    harness: Harness,
) -> None:
    ana = harness.register("ana")
    old, other = harness.new_session(ana), harness.new_session(ana)
    with connect(harness, ana) as ws:
        # As the Gateway's periodic retention task does: delete, then drop from memory. The
        # open socket keeps the actor, and its replay log in memory, alive meanwhile.
        deleted = _old_and_recent_then_retention(harness, ws, old, other)
        _run(harness, forget_expired(harness.services, deleted))
        with connect(harness, ana, "&last_seq=0") as later:
            replayed = until(later, "resumed")
    sessions = {e.get("session_id") for e in replayed if e["type"] != "resumed"}
    assert old not in sessions and other in sessions


def test_a_wrong_password_is_refused_with_403_and_erases_nothing(harness: Harness) -> None:
    ana = harness.register("ana")
    session_id = _conversation(harness, ana, ["still here"])
    refused = _erase(harness, ana, password="not the password")
    assert refused.status_code == 403
    assert refused.json()["code"] == "wrong_password"
    assert len(harness.messages(ana, session_id)) == 2


def test_repeated_wrong_passwords_lock_erasure_like_logins(harness: Harness) -> None:
    ana = harness.register("ana")
    codes = [_erase(harness, ana, password=f"wrong {n}").status_code for n in range(6)]
    assert codes[:5] == [403] * 5 and codes[5] == 429
    assert _erase(harness, ana).status_code == 429  # the right one waits too


def test_deleting_a_session_removes_its_event_log_entries(harness: Harness) -> None:
    ana = harness.register("ana")
    ana_id = harness.services.tokens.verify(ana).user_id
    gone, kept = (_conversation(harness, ana, [text]) for text in ("to delete", "to keep"))
    store = harness.services.store

    async def logged_sessions() -> list[str | None]:
        async with store.engine.connect() as conn:
            stmt = select(UserEvent.session_id).where(UserEvent.user_id == ana_id)
            return list((await conn.execute(stmt)).scalars())

    deadline = time.monotonic() + 5
    while gone not in _run(harness, logged_sessions()):
        assert time.monotonic() < deadline, "the event log was not written"
        time.sleep(0.05)
    deleted = harness.client.delete(f"/sessions/{gone}", headers=_auth(ana))
    assert deleted.status_code == 204
    logged = _run(harness, logged_sessions())
    assert gone not in logged and kept in logged

    async def messages_left() -> int:
        async with store.engine.connect() as conn:
            stmt = select(Message.id).where(Message.session_id == gone)
            return len((await conn.execute(stmt)).all())

    assert _run(harness, messages_left()) == 0


def test_resume_after_deleting_a_session_replays_nothing_of_it(harness: Harness) -> None:
    ana = harness.register("ana")
    gone, kept = harness.new_session(ana), harness.new_session(ana)
    with connect(harness, ana) as ws:  # stays open: the replay is served from memory
        until(ws, "connection")
        for session_id, text in ((gone, "words to delete"), (kept, "words to keep")):
            send(ws, session_id, text)
            until(ws, "assistant_message_complete")
        assert harness.client.delete(f"/sessions/{gone}", headers=_auth(ana)).status_code == 204
        with connect(harness, ana, "&last_seq=0") as again:
            until(again, "connection")
            replay = until(again, "resumed")
    replayed = json.dumps(replay)
    assert gone not in replayed and "words to delete" not in replayed
    assert kept in replayed and "words to keep" in replayed
