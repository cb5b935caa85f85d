"""Parsing of client frames and the shape of server events."""

from __future__ import annotations

import json

import pytest

from haven.errors import InvalidMessage, SessionNotFound
from haven.protocol import (
    AssistantMessageComplete,
    Auth,
    Cancel,
    ClientFrame,
    CompletedMessage,
    Connection,
    ErrorEvent,
    Ping,
    Pong,
    Resume,
    SessionMessage,
    parse_client_frame,
    utc_timestamp,
)


def parse(raw: str | bytes, limit: int = 100) -> ClientFrame:
    return parse_client_frame(raw, max_message_chars=limit)


def test_session_message_parses() -> None:
    message = parse('{"type":"session_message","session_id":"s","message_text":"I feel anxious"}')
    assert message == SessionMessage(
        type="session_message", session_id="s", message_text="I feel anxious"
    )


def test_ping_parses() -> None:
    assert isinstance(parse('{"type":"ping"}'), Ping)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        ('"just a string"', "invalid_message"),
        ("{}", "unknown_type"),
        ('{"type":"shout"}', "unknown_type"),
        ('{"type":"ping","extra":1}', "invalid_message"),
        ('{"type":"session_message","session_id":"s"}', "invalid_message"),
        ('{"type":"session_message","session_id":"","message_text":"x"}', "invalid_message"),
        (
            '{"type":"session_message","session_id":"' + "s" * 65 + '","message_text":"x"}',
            "invalid_message",
        ),
        ('{"type":"session_message","session_id":"s","message_text":""}', "empty_message"),
        ('{"type":"session_message","session_id":"s","message_text":"\\n\\t "}', "empty_message"),
        (
            '{"type":"session_message","session_id":"s","message_text":"a\\u0000"}',
            "invalid_message",
        ),
        (
            '{"type":"session_message","session_id":"s","message_text":"a","client_message_id":"\\u0000"}',
            "invalid_message",
        ),
        (
            '{"type":"session_message","session_id":"s","message_text":"' + "x" * 101 + '"}',
            "message_too_long",
        ),
        (
            '{"type":"session_message","session_id":"s","message_text":"' + "x" * 40_000 + '"}',
            "message_too_long",
        ),
    ],
)
def test_bad_frames_raise_typed_errors(raw: str | bytes, code: str) -> None:
    with pytest.raises(InvalidMessage) as raised:
        parse(raw)
    assert raised.value.code == code
    assert raised.value.retryable is False


def test_message_at_the_limit_is_accepted() -> None:
    text = "é" * 100
    message = parse(
        json.dumps({"type": "session_message", "session_id": "s", "message_text": text})
    )
    assert isinstance(message, SessionMessage) and message.message_text == text


def test_timestamps_are_utc_iso8601_with_z() -> None:
    stamp = utc_timestamp()
    assert stamp.endswith("Z") and "T" in stamp
    assert json.loads(Connection().to_json())["timestamp"].endswith("Z")


def test_complete_event_keeps_seed_field_names() -> None:
    event = AssistantMessageComplete(
        message=CompletedMessage(text="hi", intent="validate", risk_level="none"),
        session_id="s",
        message_id="m",
    )
    body = json.loads(event.to_json())
    assert body["type"] == "assistant_message_complete"
    # The seed's three fields, plus the reply's status.
    assert body["message"] == {
        "text": "hi",
        "intent": "validate",
        "risk_level": "none",
        "status": "complete",
    }


def test_error_event_carries_the_fixed_message_not_exception_text() -> None:
    error = SessionNotFound()
    body = json.loads(ErrorEvent.from_error(error).to_json())
    assert body == {
        "type": "error",
        "message": SessionNotFound.message,
        "code": "session_not_found",
        "retryable": False,
        "timestamp": body["timestamp"],
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"type": "cancel"}', Cancel(type="cancel")),
        ('{"type": "cancel", "message_id": "m-1"}', Cancel(type="cancel", message_id="m-1")),
        ('{"type": "auth", "token": "abc"}', Auth(type="auth", token="abc")),
        ('{"type": "resume", "last_seq": 42}', Resume(type="resume", last_seq=42)),
    ],
)
def test_added_client_frames_parse(raw: str, expected: object) -> None:
    assert parse_client_frame(raw, max_message_chars=100) == expected


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "resume", "last_seq": -1}',
        '{"type": "resume"}',
        '{"type": "auth", "token": ""}',
        '{"type": "cancel", "message_id": ""}',
        '{"type": "session_message", "session_id": "s", "message_text": "hi", '
        '"client_message_id": "' + "x" * 65 + '"}',
    ],
)
def test_added_client_frames_reject_bad_fields(raw: str) -> None:
    with pytest.raises(InvalidMessage) as error:
        parse_client_frame(raw, max_message_chars=100)
    assert error.value.code == "invalid_message"


def test_server_events_carry_seq_only_when_numbered() -> None:
    assert "seq" not in json.loads(Pong().to_json())
    assert json.loads(Pong(seq=7).to_json())["seq"] == 7
