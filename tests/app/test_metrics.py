"""What the app records as metrics while people chat: sockets, turns, latency to the first words,
risk, escalations, limits, resumes and error codes. The in-memory recorder stands in for Ray's.

Storage is not what these tests are about: they run on SQLite only."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from starlette.websockets import WebSocketDisconnect

from haven import metrics
from haven.metrics.recorders import MemoryRecorder
from tests.app.conftest import Harness, SettingsFactory, build_harness
from tests.app.wire import connect, send, until
from tests.conftest import SQLITE_ONLY
from tests.fakes import BREAK_CLASSIFIER, CRISIS_WORD, CRITICAL_WORD, ENDLESS

pytestmark = SQLITE_ONLY


@pytest.fixture
def recorded() -> Iterator[MemoryRecorder]:
    with metrics.use(MemoryRecorder()) as recorder:
        assert isinstance(recorder, MemoryRecorder)
        yield recorder


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Turns and sockets are recorded as they end, just after their last frame is sent."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the metric never reached the expected value"
        time.sleep(0.01)


def test_open_sockets_gauge_follows_sockets_and_closes_are_counted_by_code(
    harness: Harness, recorded: MemoryRecorder
) -> None:
    token = harness.register("ana")
    with connect(harness, token) as one, connect(harness, token) as two:
        until(one, "connection")
        until(two, "connection")
        assert recorded.value("haven_open_sockets") == 2
    eventually(lambda: recorded.value("haven_open_sockets") == 0)
    assert recorded.value("haven_sockets_opened_total") == 2
    assert recorded.value("haven_sockets_closed_total", by="client") == 2
    # A bad token is accepted, answered, and closed by the server with 4001.
    with connect(harness, "not-a-token") as ws, pytest.raises(WebSocketDisconnect):
        while True:
            ws.receive_json()
    eventually(lambda: recorded.value("haven_sockets_closed_total", code="4001") == 1)
    assert recorded.value("haven_sockets_closed_total", code="4001", by="server") == 1
    assert recorded.value("haven_errors_total", code="invalid_token") == 1
    assert recorded.value("haven_open_sockets") == 0


def test_completed_turn_records_its_outcome_level_and_time_to_first_chunk(
    harness: Harness, recorded: MemoryRecorder
) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        started = time.monotonic()
        send(ws, session_id, "I had a long day")
        until(ws, "assistant_message_complete")
        waited = time.monotonic() - started
    eventually(lambda: recorded.value("haven_turns_total", outcome="completed") == 1)
    assert recorded.value("haven_risk_assessments_total", level="none") == 1
    assert recorded.value("haven_escalations_total") == 0
    (first_chunk_s,) = recorded.observations("haven_time_to_first_chunk_seconds", reply="generated")
    assert 0 < first_chunk_s < waited


def test_escalations_are_counted_by_level_and_reviewed_replies_timed_apart(
    harness: Harness, recorded: MemoryRecorder
) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, f"{CRISIS_WORD} I keep thinking about it")
        until(ws, "assistant_message_complete")
    with connect(harness, harness.register("bob")) as ws:
        until(ws, "connection")
        send(ws, harness.new_session(harness.login("bob")), f"{CRITICAL_WORD} tonight")
        until(ws, "assistant_message_complete")
    eventually(lambda: recorded.value("haven_turns_total", outcome="completed") == 2)
    assert recorded.value("haven_escalations_total", level="high") == 1
    assert recorded.value("haven_escalations_total", level="critical") == 1
    assert recorded.value("haven_risk_assessments_total", level="high") == 1
    # Both levels get a reviewed reply: the language model wrote neither.
    assert len(recorded.observations("haven_time_to_first_chunk_seconds", reply="fixed")) == 2
    assert recorded.observations("haven_time_to_first_chunk_seconds", reply="generated") == []


def test_failed_classifier_counts_an_unassessed_turn_and_an_unknown_escalation(
    harness: Harness, recorded: MemoryRecorder
) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, f"{BREAK_CLASSIFIER} hello")
        until(ws, "error")
    eventually(lambda: recorded.value("haven_turns_total", outcome="unassessed") == 1)
    assert recorded.value("haven_escalations_total", level="unknown") == 1
    assert recorded.value("haven_errors_total", code="safety_unavailable") == 1
    assert recorded.value("haven_risk_assessments_total") == 0
    assert recorded.observations("haven_time_to_first_chunk_seconds") == []


def test_cancelled_and_refused_turns_have_their_own_outcomes(
    harness: Harness, recorded: MemoryRecorder
) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, f"{ENDLESS} talk to me")
        until(ws, "assistant_message_chunk")
        ws.send_json({"type": "cancel"})
        until(ws, "assistant_message_complete")
        send(ws, "00000000-0000-0000-0000-000000000000", "to nowhere")
        assert until(ws, "error")[-1]["code"] == "session_not_found"
    eventually(lambda: recorded.value("haven_turns_total", outcome="refused") == 1)
    assert recorded.value("haven_turns_total", outcome="cancelled") == 1
    assert recorded.value("haven_errors_total", code="session_not_found") == 1


def test_rate_limit_hits_are_counted_by_kind(
    app_settings: SettingsFactory, recorded: MemoryRecorder
) -> None:
    settings = app_settings(message_burst=1, message_rate_per_s=0.01, max_connections_per_user=1)
    for harness in build_harness(settings):
        token = harness.register("ana")
        session_id = harness.new_session(token)
        with connect(harness, token) as ws:
            until(ws, "connection")
            send(ws, session_id, "first")
            until(ws, "assistant_message_complete")
            send(ws, session_id, "too soon")
            assert ws.receive_json()["code"] == "rate_limited"
            with connect(harness, token) as second, pytest.raises(WebSocketDisconnect):
                while True:
                    second.receive_json()
    assert recorded.value("haven_rate_limited_total", kind="messages") == 1
    assert recorded.value("haven_rate_limited_total", kind="connections_per_user") == 1
    assert recorded.value("haven_errors_total", code="too_many_connections") == 1
    eventually(lambda: recorded.value("haven_sockets_closed_total", code="4003") == 1)


def test_resumes_are_counted_by_whether_they_recovered(
    app_settings: SettingsFactory, recorded: MemoryRecorder
) -> None:
    for harness in build_harness(app_settings(replay_max_events=3)):
        token = harness.register("ana")
        session_id = harness.new_session(token)
        with connect(harness, token) as ws:
            until(ws, "connection")
            for text in ("one", "two"):  # more events than the replay window keeps
                send(ws, session_id, text)
                last = until(ws, "assistant_message_complete")[-1]["seq"]
        with connect(harness, token, f"&last_seq={last}") as ws:
            until(ws, "resumed")
        with connect(harness, token, "&last_seq=0") as ws:
            until(ws, "resumed")
    assert recorded.value("haven_resumes_total", recovered="true") == 1
    assert recorded.value("haven_resumes_total", recovered="false") == 1
