"""The WebSocket protocol of the Gateway app, with fake model deployments."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from tests.app.conftest import SECRET, Harness, SettingsFactory, build_harness
from tests.app.wire import TIMESTAMP, connect, send, until
from tests.conftest import SQLITE_ONLY
from tests.fakes import BREAK_CLASSIFIER, BREAK_GENERATOR, SLOW, FakeGenerator


def test_connection_event_comes_first(harness: Harness) -> None:
    token = harness.register("ana")
    with connect(harness, token) as ws:
        first = ws.receive_json()
    assert first["type"] == "connection" and first["status"] == "connected"
    assert TIMESTAMP.match(first["timestamp"])


def test_turn_streams_in_seed_order_and_is_stored(harness: Harness) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, "I feel anxious today")
        events = until(ws, "assistant_message_complete")
    types = [e["type"] for e in events]
    assert types[:2] == ["user_message", "assistant_message_start"]
    assert set(types[2:-1]) == {"assistant_message_chunk"}
    assert events[0]["text"] == "I feel anxious today"
    chunks = [e for e in events if e["type"] == "assistant_message_chunk"]
    assert all(c["is_complete"] is False for c in chunks)
    complete = events[-1]["message"]
    # The fake generator's planner answers "reflect" when the policy leaves the intent open.
    assert complete == {
        "text": FakeGenerator.full_text(),
        "intent": "reflect",
        "risk_level": "none",
        "status": "complete",
    }
    assert "".join(c["chunk"] for c in chunks) == FakeGenerator.full_text()
    stored = harness.messages(token, session_id)
    assert [(m["role"], m["text"]) for m in stored] == [
        ("user", "I feel anxious today"),
        ("assistant", FakeGenerator.full_text()),
    ]
    assert stored[0]["risk_level"] == "none"
    assert stored[1]["intent"] == "reflect" and stored[1]["id"] == events[-1]["message_id"]
    # The generator learns the session, which keys what it keeps for the next turn.
    assert [r.session_id for r in harness.generator.requests] == [session_id]


def test_every_socket_of_a_user_receives_the_stream(harness: Harness) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as phone, connect(harness, token) as laptop:
        until(phone, "connection")
        until(laptop, "connection")
        send(phone, session_id, "hello from my phone")
        on_phone = until(phone, "assistant_message_complete")
        on_laptop = until(laptop, "assistant_message_complete")
    assert [e["type"] for e in on_phone] == [e["type"] for e in on_laptop]
    assert on_laptop[0]["text"] == "hello from my phone"


def test_users_are_isolated(harness: Harness) -> None:
    ana, bob = harness.register("ana"), harness.register("bob")
    ana_session = harness.new_session(ana)
    with connect(harness, ana) as ana_ws, connect(harness, bob) as bob_ws:
        until(ana_ws, "connection")
        until(bob_ws, "connection")
        send(bob_ws, ana_session, "let me into ana's session")
        error = until(bob_ws, "error")[-1]
        assert error["code"] == "session_not_found"
        send(ana_ws, ana_session, "only for me")
        until(ana_ws, "assistant_message_complete")
        bob_ws.send_json({"type": "ping"})
        # Bob's next event is his pong: nothing of Ana's turn reached him.
        assert bob_ws.receive_json()["type"] == "pong"
    assert harness.messages(ana, ana_session)[0]["text"] == "only for me"


BAD_FRAMES: list[tuple[str, str]] = [
    ("not json", "invalid_json"),
    ("[1, 2]", "invalid_message"),
    ('{"type": "dance"}', "unknown_type"),
    ('{"message_text": "hi"}', "unknown_type"),
    ('{"type": "session_message", "message_text": "hi"}', "invalid_message"),
    ('{"type": "session_message", "session_id": "SID", "message_text": 5}', "invalid_message"),
    (
        '{"type": "session_message", "session_id": "SID", "message_text": "hi", "x": 1}',
        "invalid_message",
    ),
    ('{"type": "session_message", "session_id": "SID", "message_text": "   "}', "empty_message"),
    # PostgreSQL cannot store NUL: refused up front on every backend, not a retryable failure.
    (
        '{"type": "session_message", "session_id": "SID", "message_text": "a\\u0000b"}',
        "invalid_message",
    ),
    (
        '{"type": "session_message", "session_id": "SID", "message_text": "hi", "client_message_id": "c\\u0000"}',
        "invalid_message",
    ),
    (
        '{"type": "session_message", "session_id": "SID", "message_text": "' + "a" * 4001 + '"}',
        "message_too_long",
    ),
    (
        '{"type": "session_message", "session_id": "8d0e5a86-2f76-4a57-9a55-05c2b6a3f1c1", "message_text": "hi"}',
        "session_not_found",
    ),
    (
        '{"type": "session_message", "session_id": "not-a-uuid", "message_text": "hi"}',
        "session_not_found",
    ),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
def test_bad_frame_gets_typed_error_and_socket_stays_open(
    harness: Harness, frame: str, code: str
) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        ws.send_text(frame.replace("SID", session_id))
        error = ws.receive_json()
        assert error["type"] == "error" and error["code"] == code
        assert error["retryable"] is False and error["message"]
        assert "Traceback" not in error["message"]
        send(ws, session_id, "and now a good one")
        assert until(ws, "assistant_message_complete")[0]["text"] == "and now a good one"
    assert harness.messages(token, session_id)[0]["text"] == "and now a good one"


def test_binary_frame_gets_an_error_and_socket_stays_open(harness: Harness) -> None:
    token = harness.register("ana")
    with connect(harness, token) as ws:
        until(ws, "connection")
        ws.send_bytes(b'{"type": "ping"}')
        assert ws.receive_json()["code"] == "unsupported_frame"
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"


def _closed_with(ws: WebSocketTestSession) -> tuple[dict[str, Any], int]:
    error = ws.receive_json()
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    return error, closed.value.code


@SQLITE_ONLY  # refused before storage is reached; the 10 s auth timeout is paid once
@pytest.mark.parametrize("query", ["", "?token=", "?token=garbage", "?token=a.b.c"])
def test_missing_or_invalid_token_closes_4001(harness: Harness, query: str) -> None:
    with harness.client.websocket_connect(f"/ws{query}") as ws:
        error, code = _closed_with(ws)
    assert error["type"] == "error" and error["code"] == "invalid_token"
    assert error["retryable"] is False
    assert code == 4001


def test_token_signed_with_another_secret_closes_4001(harness: Harness) -> None:
    now = int(time.time())
    forged = jwt.encode({"sub": "x", "iat": now, "exp": now + 60}, "x" * 48, algorithm="HS256")
    with harness.client.websocket_connect(f"/ws?token={forged}") as ws:
        assert _closed_with(ws)[1] == 4001


def test_expired_token_closes_4002(harness: Harness) -> None:
    now = int(time.time())
    expired = jwt.encode(
        {"sub": "x", "iat": now - 7200, "exp": now - 3600, "jti": "j"}, SECRET, algorithm="HS256"
    )
    with harness.client.websocket_connect(f"/ws?token={expired}") as ws:
        error, code = _closed_with(ws)
    assert error["code"] == "invalid_token" and error["retryable"] is True
    assert code == 4002


def test_ping_gets_pong(harness: Harness) -> None:
    token = harness.register("ana")
    with connect(harness, token) as ws:
        until(ws, "connection")
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"


def test_classifier_failure_fails_closed_with_resources(harness: Harness) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, f"{BREAK_CLASSIFIER} please")
        events = until(ws, "error")
        assert [e["type"] for e in events] == ["user_message", "safety_escalation", "error"]
        assert events[1]["risk_level"] == "unknown"
        assert events[2]["code"] == "safety_unavailable" and events[2]["retryable"] is True
        send(ws, session_id, "second try")
        until(ws, "assistant_message_complete")
    # The language model never saw the unassessed message; the person's words are kept.
    assert all(
        BREAK_CLASSIFIER not in t.text for r in harness.generator.requests for t in r.history[-1:]
    )
    roles = [(m["role"], m["risk_level"]) for m in harness.messages(token, session_id)]
    assert roles == [("user", None), ("user", "none"), ("assistant", "none")]


def test_generator_failure_midstream_is_retryable_and_not_stored(harness: Harness) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, f"{BREAK_GENERATOR} now")
        events = until(ws, "error")
        assert "assistant_message_chunk" in [e["type"] for e in events]
        assert events[-1]["code"] == "generation_failed" and events[-1]["retryable"] is True
        send(ws, session_id, "again")
        until(ws, "assistant_message_complete")
    assert [m["role"] for m in harness.messages(token, session_id)] == ["user", "user", "assistant"]


def test_reply_is_completed_and_stored_after_the_socket_closes(harness: Harness) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, f"{SLOW} goodbye for now")
        until(ws, "assistant_message_start")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        stored = harness.messages(token, session_id)
        if len(stored) == 2:
            break
        time.sleep(0.05)
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["text"] == FakeGenerator.full_text()


def test_messages_of_one_user_are_answered_in_order(harness: Harness) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        for n in range(3):
            send(ws, session_id, f"{SLOW} message {n}")
        events = [e for _ in range(3) for e in until(ws, "assistant_message_complete")]
    echoed = [e["text"] for e in events if e["type"] == "user_message"]
    assert echoed == [f"{SLOW} message {n}" for n in range(3)]
    roles = [m["role"] for m in harness.messages(token, session_id)]
    assert roles == ["user", "assistant"] * 3


def test_websocket_disabled_refuses_handshake_but_rest_works(app_settings: SettingsFactory) -> None:
    for harness in build_harness(app_settings(enable_websocket=False)):
        token = harness.register("ana")
        with pytest.raises(WebSocketDisconnect), connect(harness, token):
            pass
        assert (
            harness.client.get(
                "/sessions", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 200
        )
