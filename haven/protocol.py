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


class SessionMessage(_ClientFrame):
    type: Literal["session_message"]
    session_id: Annotated[str, StringConstraints(min_length=1, max_length=ID_MAX_LENGTH)]
    message_text: Annotated[str, StringConstraints(max_length=MESSAGE_TEXT_CEILING)]


class Ping(_ClientFrame):
    type: Literal["ping"]


ClientMessage = Annotated[SessionMessage | Ping, Field(discriminator="type")]
_client_adapter: TypeAdapter[SessionMessage | Ping] = TypeAdapter(ClientMessage)


def parse_client_frame(raw: str | bytes, *, max_message_chars: int) -> SessionMessage | Ping:
    """Parse one inbound text frame, or raise `InvalidMessage` with a stable code."""
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidMessage("invalid_json", "The message is not valid JSON.") from None
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

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


class Connection(ServerEventBase):
    type: Literal["connection"] = "connection"
    status: Literal["connected"] = "connected"


class UserMessageEvent(ServerEventBase):
    type: Literal["user_message"] = "user_message"
    text: str
    session_id: str
    message_id: str


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


class CompletedMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str
    intent: str
    risk_level: str


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

    @classmethod
    def from_error(cls, error: HavenError) -> ErrorEvent:
        # The one place a typed error becomes a wire event: fixed text, never the exception's.
        return cls(message=error.message, code=error.code, retryable=error.retryable)


class Pong(ServerEventBase):
    type: Literal["pong"] = "pong"


ServerEvent = Annotated[
    Connection
    | UserMessageEvent
    | AssistantMessageStart
    | AssistantMessageChunk
    | AssistantMessageComplete
    | SafetyEscalation
    | ErrorEvent
    | Pong,
    Field(discriminator="type"),
]
