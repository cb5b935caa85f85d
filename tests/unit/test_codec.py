"""The per-socket codec: subprotocol negotiation, JSON/MessagePack frames and their parity."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import haven.codec
import haven.protocol
from haven.codec import (
    FRAME_ERROR_CODES,
    MSGPACK_MAX_CONTAINER_LEN,
    SUBPROTOCOL_MSGPACK,
    Codec,
    decode_frame,
    encode_event,
    encode_json_frame,
    exceeds_frame_limit,
    negotiate,
)
from haven.errors import InvalidMessage, SessionNotFound
from haven.protocol import (
    AssistantMessageChunk,
    AssistantMessageComplete,
    AssistantMessageStart,
    Authenticated,
    ClientFrame,
    CompletedMessage,
    Connection,
    EmergencyResources,
    ErrorEvent,
    Pong,
    Resumed,
    SafetyEscalation,
    ServerEventBase,
    TokenExpiring,
    UserMessageEvent,
    parse_client_frame,
    parse_client_object,
)

LIMIT = 100

VALID_FRAMES: list[dict[str, Any]] = [
    {"type": "session_message", "session_id": "s1", "message_text": "I feel anxious"},
    {
        "type": "session_message",
        "session_id": "s1",
        "message_text": "é✓😀 and more",
        "client_message_id": "c-1",
    },
    {"type": "ping"},
    {"type": "cancel"},
    {"type": "cancel", "message_id": "m1"},
    {"type": "auth", "token": "header.payload.signature"},
    {"type": "resume", "last_seq": 0},
    {"type": "resume", "last_seq": 2**53},
]


def json_frame(obj: Any) -> str:
    return json.dumps(obj)


def msgpack_frame(obj: Any) -> bytes:
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


def decode(data: str | bytes, codec: Codec, limit: int = LIMIT) -> ClientFrame:
    return decode_frame(data, codec, max_message_chars=limit)


def code_of(data: str | bytes, codec: Codec, limit: int = LIMIT) -> str:
    with pytest.raises(InvalidMessage) as raised:
        decode(data, codec, limit)
    assert raised.value.retryable is False
    return raised.value.code


# --- negotiation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        ([], (Codec.JSON, None)),
        (["chat", "superchat"], (Codec.JSON, None)),
        ([SUBPROTOCOL_MSGPACK], (Codec.MSGPACK, SUBPROTOCOL_MSGPACK)),
        (["chat", SUBPROTOCOL_MSGPACK], (Codec.MSGPACK, SUBPROTOCOL_MSGPACK)),
        # Subprotocol tokens are case-sensitive (RFC 6455).
        (["Haven.MsgPack.v1"], (Codec.JSON, None)),
        (["haven.msgpack.v2"], (Codec.JSON, None)),
    ],
)
def test_negotiate(offered: list[str], expected: tuple[Codec, str | None]) -> None:
    assert negotiate(offered) == expected


def test_subprotocol_name_is_the_published_one() -> None:
    assert SUBPROTOCOL_MSGPACK == "haven.msgpack.v1"


# --- inbound -------------------------------------------------------------------------------


@pytest.mark.parametrize("frame", VALID_FRAMES, ids=lambda frame: frame["type"])
def test_valid_frames_decode_identically_in_both_codecs(frame: dict[str, Any]) -> None:
    from_json = decode(json_frame(frame), Codec.JSON)
    from_msgpack = decode(msgpack_frame(frame), Codec.MSGPACK)
    assert from_json == from_msgpack
    assert from_json.model_dump(exclude_none=True) == frame


def test_json_socket_is_parse_client_frame() -> None:
    raw = json_frame(VALID_FRAMES[0])
    assert decode(raw, Codec.JSON) == parse_client_frame(raw, max_message_chars=LIMIT)


def test_binary_frame_on_a_json_socket_is_refused() -> None:
    assert code_of(msgpack_frame({"type": "ping"}), Codec.JSON) == "unsupported_frame"
    assert code_of(b'{"type":"ping"}', Codec.JSON) == "unsupported_frame"


def test_text_frame_on_a_msgpack_socket_is_refused() -> None:
    assert code_of('{"type":"ping"}', Codec.MSGPACK) == "unsupported_frame"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "invalid_msgpack"),  # nothing at all
        (b"\xc1", "invalid_msgpack"),  # the one never-used type byte
        (b"\x81\xa4type", "invalid_msgpack"),  # truncated map
        (msgpack_frame({"type": "ping"}) + b"\xc0", "invalid_msgpack"),  # two objects
        (b"\xa3\xed\xa0\x80", "invalid_msgpack"),  # a surrogate encoded as UTF-8
        (b"\xa1\xff", "invalid_msgpack"),  # not UTF-8
        (b"\x91" * 5000 + b"\xc0", "invalid_msgpack"),  # nested past the decoder's stack
        (b"\xd4\x05\x00", "invalid_msgpack"),  # fixext 1
        (b"\xc7\x00\x05", "invalid_msgpack"),  # zero-length ext 8
        (b"\xd6\xff\x00\x00\x00\x00", "invalid_msgpack"),  # timestamp extension
        (b"\xdd\xff\xff\xff\xff", "invalid_msgpack"),  # claims 4 G elements
        (msgpack_frame(list(range(MSGPACK_MAX_CONTAINER_LEN + 1))), "invalid_msgpack"),
        (
            msgpack_frame({f"k{i}": 0 for i in range(MSGPACK_MAX_CONTAINER_LEN + 1)}),
            "invalid_msgpack",
        ),
        (msgpack_frame({(1, 2): 1}), "invalid_msgpack"),  # array as a key (strict_map_key)
        (msgpack_frame("ping"), "invalid_message"),
        (msgpack_frame([{"type": "ping"}]), "invalid_message"),
        (msgpack_frame(None), "invalid_message"),
        (msgpack_frame({b"type": "ping"}), "invalid_message"),  # binary key
        (msgpack_frame({"type": b"ping"}), "unknown_type"),  # binary where a string belongs
        (
            msgpack_frame({"type": "session_message", "session_id": b"s", "message_text": "x"}),
            "invalid_message",
        ),
        (msgpack_frame({"type": "auth", "token": b"t"}), "invalid_message"),
        (msgpack_frame({"type": "resume", "last_seq": 2**64 - 1}), "invalid_message"),
        (msgpack_frame({"type": "resume", "last_seq": -(2**63)}), "invalid_message"),
        (msgpack_frame({"type": "resume", "last_seq": float("inf")}), "invalid_message"),
        (msgpack_frame({"type": "resume", "last_seq": float("nan")}), "invalid_message"),
        (msgpack_frame({"type": "ping", "extra": 1}), "invalid_message"),
        (msgpack_frame({}), "unknown_type"),
        (msgpack_frame({"type": "shout"}), "unknown_type"),
        (
            msgpack_frame({"type": "session_message", "session_id": "s", "message_text": " \n"}),
            "empty_message",
        ),
        (
            msgpack_frame(
                {"type": "session_message", "session_id": "s", "message_text": "x" * (LIMIT + 1)}
            ),
            "message_too_long",
        ),
        (
            msgpack_frame(
                {"type": "session_message", "session_id": "s", "message_text": "x" * 40_000}
            ),
            "message_too_long",
        ),
    ],
)
def test_bad_msgpack_frames_raise_typed_errors(data: bytes, code: str) -> None:
    assert code_of(data, Codec.MSGPACK) == code


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "ping", "extra": 1},
        {"type": "shout"},
        {},
        {"type": "session_message", "session_id": "s"},
        {"type": "session_message", "session_id": "", "message_text": "x"},
        {"type": "session_message", "session_id": "s" * 65, "message_text": "x"},
        {"type": "session_message", "session_id": "s", "message_text": "\t"},
        {"type": "session_message", "session_id": "s", "message_text": "y" * 101},
        {"type": "session_message", "session_id": 5, "message_text": "x"},
        {"type": "cancel", "message_id": ["m"]},
        {"type": "auth", "token": ""},
        {"type": "auth", "token": "t" * 4097},
        {"type": "resume", "last_seq": -1},
        {"type": "resume", "last_seq": 2**53 + 1},
        {"type": "resume", "last_seq": "5"},
        {"type": "resume", "last_seq": 5.5},
        {"type": None},
        {"type": ["ping"]},
    ],
)
def test_both_codecs_give_the_same_answer(obj: dict[str, Any]) -> None:
    outcomes: list[ClientFrame | tuple[str, str]] = []
    for data, codec in ((json_frame(obj), Codec.JSON), (msgpack_frame(obj), Codec.MSGPACK)):
        try:
            outcomes.append(decode(data, codec))
        except InvalidMessage as invalid:
            outcomes.append((invalid.code, invalid.message))
    assert outcomes[0] == outcomes[1]


def test_parse_client_object_is_what_parse_client_frame_does_after_json() -> None:
    for frame in VALID_FRAMES:
        assert parse_client_object(frame, max_message_chars=LIMIT) == parse_client_frame(
            json_frame(frame), max_message_chars=LIMIT
        )
    with pytest.raises(InvalidMessage) as raised:
        parse_client_object([1], max_message_chars=LIMIT)
    assert raised.value.code == "invalid_message"


@pytest.mark.parametrize(
    ("data", "limit", "expected"),
    [
        (b"x" * 10, 10, False),
        (b"x" * 11, 10, True),
        ("x" * 10, 10, False),
        ("x" * 11, 10, True),
        ("é" * 5, 10, False),  # 10 bytes
        ("é" * 6, 10, True),  # 12 bytes in 6 characters
        ("😀" * 2, 8, False),
        ("😀" * 3, 8, True),
        ("😀" * 2 + "x", 8, True),
        ("", 0, False),
    ],
)
def test_exceeds_frame_limit_counts_utf8_bytes(
    data: str | bytes, limit: int, expected: bool
) -> None:
    assert exceeds_frame_limit(data, limit) is expected


def test_deeply_nested_json_is_invalid_json_not_a_crash() -> None:
    assert code_of("[" * 100_000, Codec.JSON) == "invalid_json"
    assert code_of('{"a":' * 100_000, Codec.JSON) == "invalid_json"


def test_frame_error_codes_are_exactly_the_ones_raised() -> None:
    # Every code in the parser's and the codec's source, so a new one cannot go unlisted.
    pattern = re.compile(r'InvalidMessage\(\s*"([a-z_]+)"')
    sources = (Path(haven.protocol.__file__), Path(haven.codec.__file__))
    raised = {code for path in sources for code in pattern.findall(path.read_text())}
    assert raised == FRAME_ERROR_CODES


# --- outbound ------------------------------------------------------------------------------

EVENTS: list[ServerEventBase] = [
    Connection(),
    Connection(encoding=SUBPROTOCOL_MSGPACK, seq=None),
    UserMessageEvent(
        text="é😀", session_id="s", message_id="m", client_message_id="c", duplicate=True, seq=1
    ),
    AssistantMessageStart(session_id="s", message_id="m", seq=2),
    AssistantMessageChunk(chunk="Hel", session_id="s", message_id="m", seq=3),
    AssistantMessageComplete(
        message=CompletedMessage(text="Hello", intent="validate", risk_level="none"),
        session_id="s",
        message_id="m",
        seq=2**62,
    ),
    SafetyEscalation(
        risk_level="high",
        emergency_resources=EmergencyResources(
            crisis_hotline="988", crisis_text="741741", message="Call", locale="US"
        ),
        session_id="s",
    ),
    ErrorEvent.from_error(SessionNotFound()),
    ErrorEvent(message="m", code="busy", retryable=True, retry_after=1.25),
    # Not finite: JSON writes null, and MessagePack must carry the same value.
    ErrorEvent(message="m", code="busy", retryable=True, retry_after=float("nan")),
    Pong(),
    TokenExpiring(expires_at="2026-01-01T00:00:00.000Z", grace_s=10.0),
    Resumed(replayed=3, recovered=False, last_seq=7),
    Authenticated(expires_at="2026-01-01T00:00:00.000Z"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: getattr(event, "type", "?"))
def test_events_are_the_same_dict_in_both_codecs(event: ServerEventBase) -> None:
    as_json = encode_event(event, Codec.JSON)
    as_msgpack = encode_event(event, Codec.MSGPACK)
    assert isinstance(as_json, str) and isinstance(as_msgpack, bytes)
    assert as_json == event.to_json()
    assert msgpack.unpackb(as_msgpack, raw=False) == json.loads(as_json)


def test_json_frames_from_the_actors_transcode_to_the_same_msgpack() -> None:
    # The connection actors hand the gateway events already serialized as JSON text.
    for event in EVENTS:
        text = event.to_json()
        assert encode_json_frame(text, Codec.JSON) is text
        assert encode_json_frame(text, Codec.MSGPACK) == encode_event(event, Codec.MSGPACK)


def test_msgpack_events_carry_no_binary_or_extension_values() -> None:
    # A browser client decodes these with a generic MessagePack library: strings stay strings.
    event = UserMessageEvent(text="hi", session_id="s", message_id="m")
    decoded = msgpack.unpackb(encode_event(event, Codec.MSGPACK), raw=True)
    assert all(isinstance(key, bytes) for key in decoded)  # raw=True: str type on the wire
    assert decoded[b"text"] == b"hi"


# --- round trip over generated frames -------------------------------------------------------

IDS = st.text(st.characters(codec="utf-8"), min_size=1, max_size=64)
# What is stored (text, client_message_id) never holds NUL: PostgreSQL cannot store it.
STORABLE = st.characters(codec="utf-8", exclude_characters="\x00")


@st.composite
def valid_frames(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["session_message", "ping", "cancel", "auth", "resume"]))
    frame: dict[str, Any] = {"type": kind}
    if kind == "session_message":
        frame["session_id"] = draw(IDS)
        frame["message_text"] = draw(
            st.text(STORABLE, min_size=1, max_size=LIMIT).filter(str.strip)
        )
        if draw(st.booleans()):
            frame["client_message_id"] = draw(st.text(STORABLE, min_size=1, max_size=64))
    elif kind == "cancel" and draw(st.booleans()):
        frame["message_id"] = draw(IDS)
    elif kind == "auth":
        frame["token"] = draw(st.text(min_size=1, max_size=200))
    elif kind == "resume":
        frame["last_seq"] = draw(st.integers(min_value=0, max_value=2**53))
    return frame


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(valid_frames())
def test_generated_valid_frames_round_trip_in_both_codecs(frame: dict[str, Any]) -> None:
    from_json = decode(json.dumps(frame, ensure_ascii=False), Codec.JSON)
    from_ascii_json = decode(json.dumps(frame, ensure_ascii=True), Codec.JSON)
    from_msgpack = decode(msgpack_frame(frame), Codec.MSGPACK)
    assert from_json == from_ascii_json == from_msgpack
    assert from_json.model_dump(exclude_none=True) == frame
