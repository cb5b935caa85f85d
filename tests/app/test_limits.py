"""Limits Haven enforces itself: connections, message rate, frame size, origins, cancel."""

from __future__ import annotations

import time

import pytest
from starlette.websockets import WebSocketDisconnect

from tests.app.conftest import Harness, SettingsFactory, build_harness
from tests.app.wire import connect, send, until
from tests.fakes import ENDLESS


def _closed(ws) -> tuple[dict, int]:  # type: ignore[no-untyped-def, type-arg]
    error = ws.receive_json()
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    return error, closed.value.code


def test_connection_over_the_per_user_limit_closes_4003(app_settings: SettingsFactory) -> None:
    for harness in build_harness(app_settings(max_connections_per_user=2)):
        ana, bob = harness.register("ana"), harness.register("bob")
        with connect(harness, ana) as one, connect(harness, ana) as two:
            until(one, "connection")
            until(two, "connection")
            with connect(harness, ana) as three:
                error, code = _closed(three)
            assert error["code"] == "too_many_connections" and error["retryable"] is False
            assert code == 4003
            # Other users are not affected, and the open sockets keep working.
            with connect(harness, bob) as bobs:
                assert until(bobs, "connection")
            one.send_json({"type": "ping"})
            assert until(one, "pong")


def test_connecting_too_often_closes_with_the_retryable_code(app_settings: SettingsFactory) -> None:
    for harness in build_harness(app_settings(new_connections_per_minute=2)):
        token = harness.register("ana")
        for _ in range(2):
            with connect(harness, token) as ws:
                until(ws, "connection")
        with connect(harness, token) as ws:
            error, code = _closed(ws)
        assert error["code"] == "connecting_too_often" and error["retryable"] is True
        assert error["retry_after"] > 0 and code == 4008


def test_messages_over_the_rate_get_rate_limited_then_sustained_abuse_closes(
    app_settings: SettingsFactory,
) -> None:
    settings = app_settings(message_burst=2, message_rate_per_s=0.01, rate_limit_close_after=3)
    for harness in build_harness(settings):
        token = harness.register("ana")
        session_id = harness.new_session(token)
        with connect(harness, token) as ws:
            until(ws, "connection")
            for n in range(2):
                send(ws, session_id, f"message {n}")
                until(ws, "assistant_message_complete")
            send(ws, session_id, "one too many")
            error = ws.receive_json()
            assert error["code"] == "rate_limited" and error["retryable"] is True
            assert error["retry_after"] > 1
            send(ws, session_id, "and another")
            assert ws.receive_json()["code"] == "rate_limited"
            send(ws, session_id, "and another")
            error, code = _closed(ws)
            assert error["code"] == "rate_limited" and code == 4008
        # Refused messages were not stored.
        assert len(harness.messages(token, session_id)) == 4


def test_frame_over_the_size_limit_closes_1009(app_settings: SettingsFactory) -> None:
    for harness in build_harness(app_settings(max_frame_bytes=1024)):
        token = harness.register("ana")
        session_id = harness.new_session(token)
        with connect(harness, token) as ws:
            until(ws, "connection")
            send(ws, session_id, "x" * 2000)
            error, code = _closed(ws)
        assert error["code"] == "frame_too_large" and code == 1009
        assert harness.messages(token, session_id) == []


def test_foreign_origin_is_refused_at_the_handshake(harness: Harness) -> None:
    token = harness.register("ana")
    with (
        pytest.raises(WebSocketDisconnect),
        harness.client.websocket_connect(
            f"/ws?token={token}", headers={"Origin": "https://evil.example"}
        ),
    ):
        pass


def test_same_origin_and_listed_origins_are_allowed(app_settings: SettingsFactory) -> None:
    settings = app_settings(allowed_origins=("https://app.example",))
    for harness in build_harness(settings):
        token = harness.register("ana")
        for origin in ("http://testserver", "https://app.example"):
            with harness.client.websocket_connect(
                f"/ws?token={token}", headers={"Origin": origin}
            ) as ws:
                assert until(ws, "connection")


def test_cancel_stops_the_reply_and_completes_it_as_cancelled(harness: Harness) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, f"{ENDLESS} talk to me")
        until(ws, "assistant_message_chunk")
        until(ws, "assistant_message_chunk")
        ws.send_json({"type": "cancel"})
        events = until(ws, "assistant_message_complete")
        produced = harness.generator.pieces_produced
        time.sleep(0.3)
        ws.send_json({"type": "cancel"})
        assert until(ws, "error")[-1]["code"] == "nothing_to_cancel"
    complete = events[-1]["message"]
    assert complete["status"] == "cancelled" and complete["text"].startswith("word0 word1")
    assert harness.generator.streams[0].closed
    # The model produced nothing more once the reply was cancelled.
    assert harness.generator.pieces_produced == produced
    stored = harness.messages(token, session_id)
    assert stored[1]["status"] == "cancelled" and stored[1]["text"] == complete["text"]


def test_binary_messagepack_socket_speaks_the_same_protocol(harness: Harness) -> None:
    import msgpack

    token = harness.register("ana")
    session_id = harness.new_session(token)
    with harness.client.websocket_connect(
        f"/ws?token={token}", subprotocols=["haven.msgpack.v1"]
    ) as ws:
        connection = msgpack.unpackb(ws.receive_bytes())
        assert connection["type"] == "connection" and connection["encoding"] == "haven.msgpack.v1"
        frame = {"type": "session_message", "session_id": session_id, "message_text": "hi"}
        ws.send_bytes(msgpack.packb(frame))
        types = []
        while not types or types[-1] != "assistant_message_complete":
            types.append(msgpack.unpackb(ws.receive_bytes())["type"])
        ws.send_text('{"type": "ping"}')
        error = msgpack.unpackb(ws.receive_bytes())
    assert types[0] == "user_message" and error["code"] == "unsupported_frame"
