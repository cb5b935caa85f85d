"""Parsing of client frames and the shape of server events."""

from __future__ import annotations

import json

import pytest

from haven.errors import InvalidMessage, SessionNotFound
from haven.protocol import (
    AssistantMessageComplete,
    CompletedMessage,
    Connection,
    ErrorEvent,
    Ping,
    SessionMessage,
    parse_client_frame,
    utc_timestamp,
)


def parse(raw: str | bytes, limit: int = 100) -> SessionMessage | Ping:
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
    assert body["message"] == {"text": "hi", "intent": "validate", "risk_level": "none"}


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
