"""Log records through a person's whole visit: ids to follow a turn and a socket, and never what
they wrote, their token or their password at INFO or above.

Storage is not what this test is about: it runs on SQLite only."""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from tests.app.conftest import Harness
from tests.app.wire import connect, send, until
from tests.conftest import SQLITE_ONLY
from tests.fakes import BREAK_CLASSIFIER, BREAK_GENERATOR, CRISIS_WORD, UNSAFE_GENERATOR
from tests.rest_client import PASSWORD

HAVEN_LOGGERS = ("haven", "actors", "deployments", "models")


def _rendered(record: logging.LogRecord) -> str:
    """Everything a formatter could write for the record: message, traceback, every field."""
    parts = [record.getMessage()]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    parts += [f"{key}={value!r}" for key, value in vars(record).items()]
    return "\n".join(parts)


def _turn_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "actors.turn" and r.msg == "turn ended: %s"]


@SQLITE_ONLY
def test_a_visit_logs_turn_and_connection_ids_but_no_text_token_or_password(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    for name in HAVEN_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    marker = f"marker-{uuid.uuid4().hex}"
    tokens = [harness.register("ana"), harness.login("ana")]
    token = tokens[-1]
    session_id = harness.new_session(token)
    # High risk last: it colours the next turns of the session, whose replies would then be
    # reviewed ones instead of the scripted generator's.
    messages = [
        f"{marker} I had a long day",
        f"{BREAK_CLASSIFIER} {marker}",
        f"{BREAK_GENERATOR} {marker}",
        f"{UNSAFE_GENERATOR} {marker}",
        f"{CRISIS_WORD} {marker} I keep thinking about it",
    ]
    with connect(harness, token) as ws:
        until(ws, "connection")
        for text in messages:
            send(ws, session_id, text)
            until(ws, "assistant_message_complete" if "BREAK" not in text else "error")
        deadline = time.monotonic() + 5
        while len(_turn_records(caplog)) < len(messages):
            assert time.monotonic() < deadline, "not every turn logged its end"
            time.sleep(0.01)
    deadline = time.monotonic() + 5
    while not any(r.msg.startswith("socket closed") for r in caplog.records):
        assert time.monotonic() < deadline, "the socket's end was not logged"
        time.sleep(0.01)

    records = [r for r in caplog.records if r.name.split(".")[0] in HAVEN_LOGGERS]
    loud = [r for r in records if r.levelno >= logging.INFO]
    assert any(r.levelno >= logging.ERROR and r.exc_info for r in loud)  # failures were logged
    for record in loud:
        rendered = _rendered(record)
        assert marker not in rendered, record.getMessage()
        assert PASSWORD not in rendered, record.getMessage()
        assert not [t for t in tokens if t in rendered], record.getMessage()

    turns = _turn_records(caplog)
    turn_ids = {getattr(r, "turn_id", None) for r in turns}
    assert None not in turn_ids and len(turn_ids) == len(messages)
    outcomes = sorted(getattr(r, "outcome", "") for r in turns)
    assert outcomes == ["completed", "completed", "failed", "replaced", "unassessed"]
    # Every record written during a turn carries that turn's id, failures included.
    for record in records:
        if record.name == "actors.turn":
            assert getattr(record, "turn_id", None) in turn_ids, record.getMessage()
    # A turn's records and its socket's records share the connection id.
    (closed,) = [r for r in records if r.msg.startswith("socket closed")]
    assert {getattr(r, "connection_id", None) for r in turns} == {closed.__dict__["connection_id"]}
