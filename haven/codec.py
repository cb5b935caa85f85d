"""How frames are encoded on one socket: JSON text (the default) or MessagePack binary.

A client picks MessagePack by offering the WebSocket subprotocol `haven.msgpack.v1`; without it
the socket speaks JSON exactly as before. Both codecs carry the same values: a MessagePack frame
decodes to the dict a JSON frame would, and is validated by the same pydantic adapter, with the
same limits and the same error codes (`haven.protocol.parse_client_object`). Server events are
the same dict in both encodings.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Final, NoReturn

import msgpack

from haven.errors import InvalidMessage
from haven.protocol import ClientFrame, ServerEventBase, parse_client_frame, parse_client_object

SUBPROTOCOL_MSGPACK: Final = "haven.msgpack.v1"

# No valid client frame has more than a handful of keys and none has an array, so these only
# bound what a hostile frame can make the decoder allocate (one element costs a pointer and an
# object, far more than its one byte on the wire). Nesting is bounded by the decoder's fixed
# stack (1024 levels, `StackError`); no valid frame nests at all.
MSGPACK_MAX_CONTAINER_LEN: Final = 1024

# Every `InvalidMessage.code` that `decode_frame` raises. `invalid_msgpack` is the MessagePack
# counterpart of `invalid_json`; the others are `haven.protocol`'s.
FRAME_ERROR_CODES: Final = frozenset(
    {
        "invalid_json",
        "invalid_msgpack",
        "invalid_message",
        "unknown_type",
        "empty_message",
        "message_too_long",
        "unsupported_frame",
    }
)


class Codec(StrEnum):
    JSON = "json"
    MSGPACK = "msgpack"


def negotiate(offered: list[str]) -> tuple[Codec, str | None]:
    """The codec for a socket whose client offered `offered` subprotocols (in its order), and
    the subprotocol to accept (None: accept without one, which means JSON).

    Subprotocol names are case-sensitive tokens (RFC 6455); an offer of anything else, or of
    nothing, falls back to JSON so existing clients keep working.
    """
    if SUBPROTOCOL_MSGPACK in offered:
        return Codec.MSGPACK, SUBPROTOCOL_MSGPACK
    return Codec.JSON, None


def decode_frame(data: str | bytes, codec: Codec, *, max_message_chars: int) -> ClientFrame:
    """Decode and validate one inbound message, or raise `InvalidMessage` (codes in
    `FRAME_ERROR_CODES`).

    A JSON socket takes text frames only, a MessagePack socket binary frames only: the frame
    type is part of the negotiated encoding, and accepting both would let a client mix them.
    """
    if codec is Codec.JSON:
        if not isinstance(data, str):
            raise InvalidMessage(
                "unsupported_frame", "Binary frames are not supported on a JSON socket."
            )
        return parse_client_frame(data, max_message_chars=max_message_chars)
    if isinstance(data, str):
        raise InvalidMessage(
            "unsupported_frame", "Text frames are not supported on a MessagePack socket."
        )
    return parse_client_object(_unpack(data), max_message_chars=max_message_chars)


def exceeds_frame_limit(data: str | bytes, max_frame_bytes: int) -> bool:
    """Whether a received message is larger than `max_frame_bytes` on the wire (UTF-8 for
    text), for a check behind the proxy's own limit.

    Encodes text only when its length alone cannot decide: a character is 1 to 4 bytes.
    """
    if isinstance(data, bytes):
        return len(data) > max_frame_bytes
    if len(data) > max_frame_bytes:
        return True
    if len(data) * 4 <= max_frame_bytes:
        return False
    # "surrogatepass": a text message from the ASGI server never holds lone surrogates, but
    # the size check must not be what fails on one.
    return len(data.encode("utf-8", "surrogatepass")) > max_frame_bytes


def encode_event(event: ServerEventBase, codec: Codec) -> str | bytes:
    """One server event as a frame: JSON text, or MessagePack of the very same dict."""
    return encode_json_frame(event.to_json(), codec)


def encode_json_frame(text: str, codec: Codec) -> str | bytes:
    """An event already serialized as JSON (as the connection actors emit them) as a frame of
    `codec`: the text itself, or MessagePack of the dict it holds."""
    if codec is Codec.JSON:
        return text
    # Going through the JSON form keeps both encodings identical by construction, pydantic's
    # JSON-only rules included (a non-finite float becomes null, `exclude_none` applies);
    # events are small, so the extra parse costs microseconds.
    packed: bytes = msgpack.packb(json.loads(text), use_bin_type=True)
    return packed


def _unpack(data: bytes) -> dict[str, object]:
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,  # str stays str; invalid UTF-8 is an error, not bytes
            strict_map_key=True,  # keys may only be str or bytes (bytes refused below)
            use_list=True,
            timestamp=0,
            max_ext_len=0,
            ext_hook=_refuse_ext,  # max_ext_len=0 still lets a zero-length ext through
            max_array_len=MSGPACK_MAX_CONTAINER_LEN,
            max_map_len=MSGPACK_MAX_CONTAINER_LEN,
        )
    except (ValueError, msgpack.UnpackException):
        # ValueError covers ExtraData, FormatError, StackError, invalid UTF-8 and every limit.
        raise InvalidMessage("invalid_msgpack", "The message is not valid MessagePack.") from None
    if not isinstance(obj, dict):
        raise InvalidMessage("invalid_message", "The message must be a MessagePack map.")
    if not all(isinstance(key, str) for key in obj):
        raise InvalidMessage("invalid_message", "Every key of the message must be a string.")
    # JSON has no binary type, and pydantic's lax mode would accept bytes for a str field
    # (decoding them as UTF-8); a placeholder no field accepts keeps the two codecs alike
    # (`bin` where a string belongs is a wrongly typed field, as a number would be).
    return {key: _BINARY if isinstance(value, bytes) else value for key, value in obj.items()}


class _Binary:
    """Stands in for a top-level `bin` value: every field type refuses it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<binary>"


_BINARY: Final = _Binary()


def _refuse_ext(code: int, data: bytes) -> NoReturn:
    raise ValueError("MessagePack extension types are not accepted")
