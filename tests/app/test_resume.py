"""Numbered events, resume and offline delivery, and resending a message safely."""

from __future__ import annotations

import itertools
import time
from typing import Any

from starlette.testclient import WebSocketTestSession

from tests.app.conftest import Harness, SettingsFactory, build_harness
from tests.app.wire import connect, send, until
from tests.fakes import SLOW, FakeGenerator


def _wait_for_messages(harness: Harness, token: str, session_id: str, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(harness.messages(token, session_id)) < count:
        assert time.monotonic() < deadline, "reply was not stored in time"
        time.sleep(0.05)


def _until_resumed(ws: WebSocketTestSession) -> list[dict[str, Any]]:
    return until(ws, "resumed")


def test_every_event_after_connection_has_a_strictly_increasing_seq(harness: Harness) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        assert "seq" not in until(ws, "connection")[0]
        send(ws, session_id, "first")
        events = until(ws, "assistant_message_complete")
        ws.send_json({"type": "ping"})
        events += until(ws, "pong")
        send(ws, session_id, "second")
        events += until(ws, "assistant_message_complete")
    seqs = [e["seq"] for e in events]
    assert all(b > a for a, b in itertools.pairwise(seqs)), seqs


def test_resume_replays_what_was_missed_with_complete_replies_not_chunks(
    harness: Harness,
) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as phone:
        until(phone, "connection")
        send(phone, session_id, "before the tunnel")
        last_seen = until(phone, "assistant_message_complete")[-1]["seq"]
    # While the phone is away, the laptop carries on the conversation.
    with connect(harness, token) as laptop:
        until(laptop, "connection")
        send(laptop, session_id, "typed on the laptop")
        missed = until(laptop, "assistant_message_complete")
    with connect(harness, token, f"&last_seq={last_seen}") as phone:
        until(phone, "connection")
        replay = _until_resumed(phone)
    types = [e["type"] for e in replay]
    assert types == [
        "user_message",
        "assistant_message_start",
        "assistant_message_complete",
        "resumed",
    ]
    assert [e["seq"] for e in replay[:-1]] == [
        e["seq"] for e in missed if e["type"] != "assistant_message_chunk"
    ]
    assert replay[2]["message"]["text"] == FakeGenerator.full_text()
    assert replay[-1]["replayed"] == 3 and replay[-1]["recovered"] is True


def test_reply_finished_while_away_is_delivered_on_resume(harness: Harness) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, f"{SLOW} tell me something kind")
        start = until(ws, "assistant_message_start")[-1]
    _wait_for_messages(harness, token, session_id, 2)
    with connect(harness, token) as ws:
        until(ws, "connection")
        ws.send_json({"type": "resume", "last_seq": start["seq"]})
        replay = _until_resumed(ws)
    assert [e["type"] for e in replay] == ["assistant_message_complete", "resumed"]
    assert replay[0]["message_id"] == start["message_id"]
    assert replay[0]["message"]["text"] == FakeGenerator.full_text()


def test_resume_older_than_the_window_says_not_recovered(app_settings: SettingsFactory) -> None:
    for harness in build_harness(app_settings(replay_max_events=3)):
        token = harness.register("ana")
        session_id = harness.new_session(token)
        with connect(harness, token) as ws:
            until(ws, "connection")
            for text in ("one", "two"):
                send(ws, session_id, text)
                until(ws, "assistant_message_complete")
            ws.send_json({"type": "resume", "last_seq": 0})
            resumed = _until_resumed(ws)[-1]
        assert resumed["recovered"] is False and resumed["replayed"] == 3


def test_replay_survives_a_rebuilt_actor(harness: Harness) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, "remember this")
        events = until(ws, "assistant_message_complete")
    # No socket and no turn: the actor is dropped; the next one is built from storage.
    deadline = time.monotonic() + 5
    while harness.connections.user_count:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with connect(harness, token, "&last_seq=0") as ws:
        until(ws, "connection")
        replay = _until_resumed(ws)
        ws.send_json({"type": "ping"})
        pong = until(ws, "pong")[-1]
    assert [e["seq"] for e in replay[:-1]] == [
        e["seq"] for e in events if e["type"] != "assistant_message_chunk"
    ]
    assert replay[-1]["recovered"] is True
    # Numbering goes on above everything the first actor handed out.
    assert pong["seq"] > events[-1]["seq"]


def test_resending_a_client_message_id_makes_no_second_message_or_reply(
    harness: Harness,
) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, "only once please", client_message_id="m-1")
        first = until(ws, "assistant_message_complete")
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, "only once please", client_message_id="m-1")
        again = until(ws, "assistant_message_complete")
    assert again[0]["type"] == "user_message" and again[0]["duplicate"] is True
    assert again[0]["message_id"] == first[0]["message_id"]
    assert again[-1]["message_id"] == first[-1]["message_id"]
    assert [e["type"] for e in again] == ["user_message", "assistant_message_complete"]
    assert len(harness.messages(token, session_id)) == 2
    assert len(harness.generator.requests) == 1


def test_client_message_ids_of_different_users_do_not_collide(harness: Harness) -> None:
    ana, bob = harness.register("ana"), harness.register("bob")
    for token in (ana, bob):
        session_id = harness.new_session(token)
        with connect(harness, token) as ws:
            until(ws, "connection")
            send(ws, session_id, "hello", client_message_id="same-id")
            events = until(ws, "assistant_message_complete")
        assert "duplicate" not in events[0]


def test_resend_after_a_retryable_failure_runs_the_turn_for_the_stored_message(
    harness: Harness,
) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    harness.assessor.failures_left = 1
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, "are you there", client_message_id="m-1")
        failed = until(ws, "error")
        assert failed[-1]["code"] == "safety_unavailable" and failed[-1]["retryable"] is True
        send(ws, session_id, "are you there", client_message_id="m-1")
        retried = until(ws, "assistant_message_complete")
    assert retried[0]["type"] == "user_message" and retried[0]["duplicate"] is True
    assert retried[0]["message_id"] == failed[0]["message_id"]
    stored = harness.messages(token, session_id)
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert len(harness.generator.requests) == 1


def test_resend_of_an_unanswered_message_with_later_messages_only_repeats_it(
    harness: Harness,
) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    harness.assessor.failures_left = 1
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, "first", client_message_id="m-1")
        until(ws, "error")
        send(ws, session_id, "second", client_message_id="m-2")
        until(ws, "assistant_message_complete")
        send(ws, session_id, "first", client_message_id="m-1")
        again = until(ws, "user_message")
        ws.send_json({"type": "ping"})
        # No turn started for the resend: the next thing on the socket is the pong.
        assert [e["type"] for e in until(ws, "pong")] == ["pong"]
    assert again[-1]["duplicate"] is True
    stored = harness.messages(token, session_id)
    assert [(m["role"], m["text"]) for m in stored[:2]] == [("user", "first"), ("user", "second")]
    assert [m["role"] for m in stored] == ["user", "user", "assistant"]
    assert len(harness.generator.requests) == 1
