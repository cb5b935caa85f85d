"""The WebSocket wire protocol: every frame either way, as pydantic models.

The seed specification (`websocket-support.md`) fixes the message types and field names; this
module adds optional fields (`session_id`, `message_id`, error `code` and `retryable`) and never
renames or drops one. Inbound frames are parsed exactly once, by `parse_client_frame`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from haven.errors import HavenError, InvalidMessage

# A hard ceiling for the parser; the configurable, usually lower, limit is `max_message_chars`.
MESSAGE_TEXT_CEILING = 32_768
ID_MAX_LENGTH = 64


def utc_timestamp() -> str:
    """ISO-8601 in UTC with a `Z` suffix and millisecond precision, as the seed shows."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- client -> server -------------------------------------------------------------------------


class _ClientFrame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


Identifier = Annotated[str, StringConstraints(min_length=1, max_length=ID_MAX_LENGTH)]
TOKEN_MAX_LENGTH = 4096


class SessionMessage(_ClientFrame):
    type: Literal["session_message"]
    session_id: Identifier
    message_text: Annotated[str, StringConstraints(max_length=MESSAGE_TEXT_CEILING)]
    # Chosen by the client; resending the same id (after a reconnect) never makes a second
    # message or a second reply.
    client_message_id: Identifier | None = None


class Ping(_ClientFrame):
    type: Literal["ping"]


class Cancel(_ClientFrame):
    """Stop the reply in flight (optionally only if it is this message's)."""

    type: Literal["cancel"]
    message_id: Identifier | None = None


class Auth(_ClientFrame):
    """A token as the first frame (instead of the URL), or a fresh one on an open socket."""

    type: Literal["auth"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=TOKEN_MAX_LENGTH)]


class Resume(_ClientFrame):
    """Replay every event after `last_seq` that this socket missed."""

    type: Literal["resume"]
    last_seq: Annotated[int, Field(ge=0, le=2**53)]


ClientFrame = SessionMessage | Ping | Cancel | Auth | Resume
ClientMessage = Annotated[ClientFrame, Field(discriminator="type")]
_client_adapter: TypeAdapter[ClientFrame] = TypeAdapter(ClientMessage)


def parse_client_frame(raw: str | bytes, *, max_message_chars: int) -> ClientFrame:
    """Parse one inbound text frame, or raise `InvalidMessage` with a stable code."""
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: arrays or objects nested deeper than the interpreter's recursion
        # limit ("[[[[..." fits easily in one frame) make the C decoder give up that way.
        raise InvalidMessage("invalid_json", "The message is not valid JSON.") from None
    return parse_client_object(data, max_message_chars=max_message_chars)


def parse_client_object(data: object, *, max_message_chars: int) -> ClientFrame:
    """Validate one already decoded frame (from JSON or MessagePack) exactly as
    `parse_client_frame` does after decoding, or raise `InvalidMessage`."""
    if not isinstance(data, dict):
        raise InvalidMessage("invalid_message", "The message must be a JSON object.")
    try:
        message = _client_adapter.validate_python(data)
    except ValidationError as exc:
        raise _invalid_from(exc) from None
    if isinstance(message, SessionMessage):
        if not message.message_text.strip():
            raise InvalidMessage("empty_message", "message_text must not be empty.")
        if len(message.message_text) > max_message_chars:
            raise InvalidMessage(
                "message_too_long",
                f"message_text is longer than {max_message_chars} characters.",
            )
    return message


def _invalid_from(exc: ValidationError) -> InvalidMessage:
    first = exc.errors(include_url=False, include_input=False)[0]
    kind, loc = first["type"], first["loc"]
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        return InvalidMessage("unknown_type", "The message type is missing or not supported.")
    if loc and loc[-1] == "message_text" and kind == "string_too_long":
        return InvalidMessage("message_too_long", "message_text is too long.")
    field = ".".join(str(part) for part in loc[1:]) or "message"
    if kind == "missing":
        return InvalidMessage("invalid_message", f"The field '{field}' is required.")
    if kind == "extra_forbidden":
        return InvalidMessage("invalid_message", f"The field '{field}' is not allowed.")
    return InvalidMessage("invalid_message", f"The field '{field}' is invalid.")


# --- server -> client -------------------------------------------------------------------------


class ServerEventBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timestamp: str = Field(default_factory=utc_timestamp)
    # Per user, strictly increasing on every event after `connection` (see `resume`).
    seq: int | None = None

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


class Connection(ServerEventBase):
    type: Literal["connection"] = "connection"
    status: Literal["connected"] = "connected"
    # The subprotocol ("haven.msgpack.v1") or None for JSON.
    encoding: str | None = None


class UserMessageEvent(ServerEventBase):
    type: Literal["user_message"] = "user_message"
    text: str
    session_id: str
    message_id: str
    client_message_id: str | None = None
    # True when this repeats an already stored message (same `client_message_id`).
    duplicate: bool | None = None


class AssistantMessageStart(ServerEventBase):
    type: Literal["assistant_message_start"] = "assistant_message_start"
    session_id: str
    message_id: str


class AssistantMessageChunk(ServerEventBase):
    type: Literal["assistant_message_chunk"] = "assistant_message_chunk"
    chunk: str
    is_complete: bool = False
    session_id: str
    message_id: str


ReplyStatus = Literal["complete", "cancelled", "replaced"]


class CompletedMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str
    intent: str
    risk_level: str
    # "cancelled": the client stopped it, `text` is what was written until then.
    # "replaced": the generated text failed the output check; `text` is the safe replacement
    # and supersedes every chunk streamed for this message.
    status: ReplyStatus = "complete"


class AssistantMessageComplete(ServerEventBase):
    type: Literal["assistant_message_complete"] = "assistant_message_complete"
    message: CompletedMessage
    session_id: str
    message_id: str


class EmergencyResources(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    crisis_hotline: str
    crisis_text: str
    message: str
    # Additions to the seed's keys, per locale.
    locale: str | None = None
    text_instruction: str | None = None  # e.g. "Text HOME to 741741"
    emergency_number: str | None = None
    chat_url: str | None = None


class SafetyEscalation(ServerEventBase):
    type: Literal["safety_escalation"] = "safety_escalation"
    # A level name, or "unknown" when the message could not be assessed (fail closed).
    risk_level: str
    emergency_resources: EmergencyResources
    session_id: str


class ErrorEvent(ServerEventBase):
    type: Literal["error"] = "error"
    message: str
    code: str
    retryable: bool
    retry_after: float | None = None  # seconds, when waiting is what fixes it

    @classmethod
    def from_error(cls, error: HavenError) -> ErrorEvent:
        # The one place a typed error becomes a wire event: fixed text, never the exception's.
        return cls(
            message=error.message,
            code=error.code,
            retryable=error.retryable,
            retry_after=error.retry_after,
        )


class Pong(ServerEventBase):
    type: Literal["pong"] = "pong"


class TokenExpiring(ServerEventBase):
    """The socket's token expires at `expires_at`; send `auth` with a fresh one before then."""

    type: Literal["token_expiring"] = "token_expiring"
    expires_at: str
    grace_s: float


class Resumed(ServerEventBase):
    """Ends a replay: `replayed` events were sent again; `recovered` is False when some of
    what was missed is older than the retained window (reload the session's messages)."""

    type: Literal["resumed"] = "resumed"
    replayed: int
    recovered: bool
    last_seq: int


class Authenticated(ServerEventBase):
    """A fresh token sent on an open socket was accepted."""

    type: Literal["authenticated"] = "authenticated"
    expires_at: str


ServerEvent = Annotated[
    Connection
    | UserMessageEvent
    | AssistantMessageStart
    | AssistantMessageChunk
    | AssistantMessageComplete
    | SafetyEscalation
    | ErrorEvent
    | Pong
    | TokenExpiring
    | Resumed
    | Authenticated,
    Field(discriminator="type"),
]
