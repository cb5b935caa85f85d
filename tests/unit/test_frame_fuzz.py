"""Generated hostile input for the frame parsers: whatever a client sends, the answer is a valid
client message or an `InvalidMessage` with a documented code (and an `error` event that can
be sent back in either codec), never any other exception.

The runs are derandomized, so every run checks the same cases; the number of cases is fixed per
test (see `--hypothesis-show-statistics`).
"""

from __future__ import annotations

import json
import math
from typing import Any, get_args

import msgpack
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from haven.codec import FRAME_ERROR_CODES, Codec, decode_frame, encode_event
from haven.errors import InvalidMessage
from haven.protocol import ClientFrame, ErrorEvent, parse_client_frame

LIMIT = 50
CLIENT_MODELS: tuple[type[Any], ...] = get_args(ClientFrame)

FUZZ = settings(
    max_examples=2000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- what a client can send ----------------------------------------------------------------

# Lone surrogates are rare in hypothesis' default alphabet; JSON can carry them ("\ud800").
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
SPECIAL = st.sampled_from(list(' \t\n\r\x00\x7f"\\/\u2028\u2029\ufeff\U0001f600'))
CHARS = st.characters(exclude_categories=()) | SURROGATES | SPECIAL
TEXT = st.text(CHARS, max_size=24)
# Well past 64 bits, and around the `last_seq` bound; json refuses more than 4300 digits.
NUMBERS = (
    st.integers()
    | st.integers(min_value=2**53 - 2, max_value=2**53 + 2)
    | st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**100])
    | st.builds(pow, st.just(-10), st.just(4001))  # 4002 characters
    | st.floats(allow_nan=True, allow_infinity=True)
)
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT

JSON_VALUES = st.recursive(
    SCALARS,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(TEXT, kids, max_size=4),
    max_leaves=12,
)
# Single field values one level deep: no field takes a container, so deeper ones add nothing
# here (deep values have their own tests), and a flat strategy is far cheaper to draw.
FIELD_VALUES = SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(TEXT, SCALARS, max_size=3)

# One valid frame per client message type, every optional field present.
VALID_EXAMPLES: dict[str, dict[str, Any]] = {
    "session_message": {
        "type": "session_message",
        "session_id": "s1",
        "message_text": "hello",
        "client_message_id": "c1",
    },
    "ping": {"type": "ping"},
    "cancel": {"type": "cancel", "message_id": "m1"},
    "auth": {"type": "auth", "token": "t.t.t"},
    "resume": {"type": "resume", "last_seq": 3},
    "join": {"type": "join", "session_id": "s1"},
    "counsellor_message": {
        "type": "counsellor_message",
        "session_id": "s1",
        "message_text": "I'm here",
        "client_message_id": "k1",
    },
    "leave": {"type": "leave", "session_id": "s1"},
}


@st.composite
def mutated_frames(draw: st.DrawFn) -> dict[str, Any]:
    """A valid frame of some type with some of its fields (`type` included) dropped or given an
    arbitrary value, and maybe extra fields."""
    kind = draw(st.sampled_from(sorted(VALID_EXAMPLES)))
    frame = dict(VALID_EXAMPLES[kind])
    fields = sorted(frame)
    for name in draw(st.lists(st.sampled_from(fields), unique=True, max_size=len(fields))):
        if draw(st.booleans()):
            frame[name] = draw(FIELD_VALUES)
        else:
            del frame[name]
    frame.update(draw(st.dictionaries(TEXT | st.sampled_from(fields), FIELD_VALUES, max_size=2)))
    return frame


# --- the property --------------------------------------------------------------------------


def outcome(data: str | bytes, codec: Codec | None) -> object:
    """The result of one parse, checked: a client model, or the code of an `InvalidMessage`
    whose error event encodes in both codecs. `codec` None is `parse_client_frame` itself."""
    try:
        if codec is None:
            result: object = parse_client_frame(data, max_message_chars=LIMIT)
        else:
            result = decode_frame(data, codec, max_message_chars=LIMIT)
    except InvalidMessage as invalid:
        assert invalid.code in FRAME_ERROR_CODES, invalid.code
        event = ErrorEvent.from_error(invalid)
        encode_event(event, Codec.JSON)
        encode_event(event, Codec.MSGPACK)
        return invalid.code
    assert isinstance(result, CLIENT_MODELS)
    # Accepted text goes back out (echoed in `user_message`): it must encode.
    result.model_dump_json()
    return result


def pack(value: Any) -> bytes | None:
    try:
        packed: bytes = msgpack.packb(value, use_bin_type=True)
    except (OverflowError, UnicodeEncodeError, ValueError):
        # Integers past 64 bits and strings with lone surrogates have no MessagePack form.
        return None
    return packed


def check_value(value: Any) -> None:
    """`value` sent as JSON (both escapings) and as MessagePack; where both carry the same
    data, both codecs must give the same answer."""
    compact = json.dumps(value, ensure_ascii=False)
    escaped = json.dumps(value, ensure_ascii=True)
    from_json = outcome(compact, Codec.JSON)
    assert outcome(compact, None) == from_json
    assert outcome(escaped, Codec.JSON) == from_json
    # Lone surrogates written as UTF-8 bytes (not valid UTF-8) reach the parser as bytes.
    outcome(compact.encode("utf-8", "surrogatepass"), None)
    assert outcome(escaped, Codec.MSGPACK) == "unsupported_frame"
    packed = pack(json.loads(escaped))
    if packed is not None:
        assert outcome(packed, Codec.MSGPACK) == from_json
        assert outcome(packed, Codec.JSON) == "unsupported_frame"


# --- the tests -----------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=300))
@example(b"\xff\xfe{\x00}\x00")  # UTF-16 with a BOM: json detects it
@example(b"\x81\xa4type\xa4ping")
@example(b"\xc7\x00\x05")
def test_random_bytes(data: bytes) -> None:
    outcome(data, None)
    assert outcome(data, Codec.JSON) == "unsupported_frame"
    outcome(data, Codec.MSGPACK)


@FUZZ
@given(st.text(CHARS, max_size=300))
@example('{"type":"ping"}')
@example('{"type":"ping","\\ud800":1}')
@example('{"type":"resume","last_seq":' + "9" * 5000 + "}")
@example('{"type":"session_message","session_id":"s","message_text":"\\ud83d"}')
def test_random_text(text: str) -> None:
    outcome(text, None)
    outcome(text, Codec.JSON)
    assert outcome(text, Codec.MSGPACK) == "unsupported_frame"


@FUZZ
@given(JSON_VALUES)
def test_random_json_values(value: Any) -> None:
    check_value(value)


@FUZZ
@given(mutated_frames())
def test_every_field_of_every_message_type_with_wrong_values(frame: dict[str, Any]) -> None:
    check_value(frame)


@FUZZ
@given(
    st.sampled_from(sorted(VALID_EXAMPLES)),
    st.sampled_from([Codec.JSON, Codec.MSGPACK]),
    st.lists(
        st.tuples(st.integers(min_value=0), st.integers(0, 255), st.integers(0, 2)), max_size=4
    ),
)
def test_corrupted_valid_frames(kind: str, codec: Codec, edits: list[tuple[int, int, int]]) -> None:
    """Bytes replaced, inserted or cut off in a valid frame: near-misses of the real thing."""
    frame = VALID_EXAMPLES[kind]
    data = bytearray(json.dumps(frame).encode() if codec is Codec.JSON else msgpack.packb(frame))
    for position, byte, action in edits:
        index = position % (len(data) + 1)
        if action == 0 and index < len(data):
            data[index] = byte
        elif action == 1:
            data.insert(index, byte)
        else:
            del data[index:]
    if codec is Codec.JSON:
        outcome(bytes(data), None)
        outcome(bytes(data).decode("utf-8", "replace"), Codec.JSON)
    else:
        outcome(bytes(data), Codec.MSGPACK)


@settings(FUZZ, max_examples=300)
@given(st.integers(min_value=1, max_value=50_000), st.sampled_from(["[", '{"a":', '{"type":']))
@example(100_000, "[")
@example(100_000, '{"a":')
def test_deep_nesting(depth: int, opener: str) -> None:
    outcome(opener * depth, None)
    outcome(opener * depth, Codec.JSON)
    # MessagePack: fixarray of one element, or fixmap of one pair, `depth` times over.
    prefix = b"\x91" if opener == "[" else b"\x81\xa1a"
    outcome(prefix * depth + b"\xc0", Codec.MSGPACK)


def test_every_client_message_type_has_a_valid_example() -> None:
    kinds = {get_args(model.model_fields["type"].annotation)[0] for model in CLIENT_MODELS}
    assert kinds == set(VALID_EXAMPLES)
    for frame in VALID_EXAMPLES.values():
        assert isinstance(outcome(json.dumps(frame), Codec.JSON), CLIENT_MODELS)
        packed = pack(frame)
        assert packed is not None
        assert isinstance(outcome(packed, Codec.MSGPACK), CLIENT_MODELS)


def test_non_finite_numbers_are_refused_for_integers() -> None:
    for number in (math.inf, -math.inf, math.nan):
        frame = {"type": "resume", "last_seq": number}
        assert outcome(json.dumps(frame), Codec.JSON) == "invalid_message"


WRONG_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    math.nan,
    2**64,
    "",
    " ",
    "x" * 70_000,
    "\ud800",
    [],
    ["x"],
    {},
    {"type": "ping"},
]


def test_each_field_of_each_message_type_with_each_wrong_value() -> None:
    """Every field (`type` included) of every client message, set to each of a fixed list of
    values or left out: the exhaustive counterpart of the generated frames."""
    cases = 0
    for frame in VALID_EXAMPLES.values():
        for name in frame:
            without = {key: value for key, value in frame.items() if key != name}
            check_value(without)
            for value in WRONG_VALUES:
                check_value({**frame, name: value})
                cases += 1
    assert cases == len(WRONG_VALUES) * sum(len(frame) for frame in VALID_EXAMPLES.values())
