"""A person's words never sit in the database in the clear: after a turn over the socket, a
marker in the message is found neither in the SQLite file (nor its WAL) nor in a pg_dump, while
REST and a resume served from storage read it back as before."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy.engine import make_url

from haven.storage.database import sqlite_path
from tests import postgres as pg
from tests.app.conftest import Harness
from tests.app.wire import connect, send, until
from tests.fakes import FakeGenerator

MARKER = "zq-marker-5521 nobody knows I stopped eating"


def _database_bytes(url: str) -> bytes:
    path = sqlite_path(url)
    if path is None:
        assert make_url(url).get_backend_name() == "postgresql"
        return pg.dump(url)
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    assert files[1].exists(), "the WAL is part of what is scanned"
    return b"".join(p.read_bytes() for p in files if p.exists())


def _wait_until_evicted(harness: Harness, user_id: str) -> None:
    """The user's actor is gone and its event log written: the next socket reads storage."""
    deadline = time.monotonic() + 5
    core = harness.connections
    while core.existing(user_id) is not None or core._retiring.get(user_id) is not None:
        assert time.monotonic() < deadline, "the user's actor was not retired in time"
        time.sleep(0.05)


def test_marker_sent_over_a_socket_is_not_in_the_database_yet_reads_back(
    harness: Harness,
) -> None:
    token = harness.register("visible_username")
    user_id = harness.services.tokens.verify(token).user_id
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, MARKER)
        until(ws, "assistant_message_complete")
    _wait_until_evicted(harness, user_id)

    stored = _database_bytes(harness.services.settings.resolved_database_url)
    assert b"visible_username" in stored  # the scan does see what is stored in the clear
    assert b"zq-marker-5521" not in stored
    assert FakeGenerator.full_text().encode() not in stored
    assert "zq-marker-5521".encode("utf-16-le") not in stored

    texts = [m["text"] for m in harness.messages(token, session_id)]
    assert texts == [MARKER, FakeGenerator.full_text()]
    with connect(harness, token, "&last_seq=0") as ws:
        until(ws, "connection")
        replay = until(ws, "resumed")
    echoed = [e for e in replay if e["type"] == "user_message"]
    assert [e["text"] for e in echoed] == [MARKER]
    completed = [e for e in replay if e["type"] == "assistant_message_complete"]
    assert [e["message"]["text"] for e in completed] == [FakeGenerator.full_text()]
