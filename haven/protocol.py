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

from haven import metrics
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
NUL = "\x00"
TOKEN_MAX_LENGTH = 4096


class SessionMessage(_ClientFrame):
    """A message of the person in one of their sessions: stored, screened, then answered."""

    type: Literal["session_message"]
    session_id: Identifier = Field(
        description="A session of this user (`POST /sessions`). An unknown id and another "
        "user's session both get `session_not_found`."
    )
    message_text: Annotated[str, StringConstraints(max_length=MESSAGE_TEXT_CEILING)] = Field(
        description="What the person wrote: not empty or only whitespace (`empty_message`), "
        "at most `max_message_chars` characters (`message_too_long`), no NUL (U+0000) "
        "character (`invalid_message`)."
    )
    # Chosen by the client; resending the same id (after a reconnect) never makes a second
    # message or a second reply.
    client_message_id: Identifier | None = Field(
        default=None,
        description="Chosen by the client, one per message. Resending the same id (e.g. after "
        "a reconnect) never stores a second message or starts a second reply: the sender gets "
        "the stored `user_message` again with `duplicate: true`, and the stored reply's "
        "`assistant_message_complete` if there is one. If the earlier attempt ended in a "
        "retryable `error` before any reply was stored and nothing was written after it, the "
        "resend runs the turn for the stored message (so retry with the same id).",
    )


class Ping(_ClientFrame):
    """An application-level keep-alive, answered with `pong` on this socket only."""

    type: Literal["ping"]


class Cancel(_ClientFrame):
    """Stop the reply in flight (optionally only if it is this message's)."""

    type: Literal["cancel"]
    message_id: Identifier | None = Field(
        default=None,
        description="The reply's `message_id` (from `assistant_message_start`): stop it only "
        "if it is the reply in flight. Without it, whichever reply of the user is in flight.",
    )


class Auth(_ClientFrame):
    """A token as the first frame (instead of the URL), or a fresh one on an open socket."""

    type: Literal["auth"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=TOKEN_MAX_LENGTH)] = Field(
        description="An access token from `POST /auth/login`; on an open socket it must be "
        "the same user's."
    )


class Resume(_ClientFrame):
    """Replay every event after `last_seq` that this socket missed."""

    type: Literal["resume"]
    last_seq: Annotated[
        int,
        Field(
            ge=0,
            le=2**53,
            description="The highest `seq` this client has received; `0` replays everything "
            "still kept.",
        ),
    ]


class Join(_ClientFrame):
    """Counsellors only: join a conversation of the queue. The counsellor gets
    `session_history`, then every event of that session; the person gets `counsellor_joined`,
    and the assistant stops replying until the counsellor leaves."""

    type: Literal["join"]
    session_id: Identifier = Field(
        description="A conversation in the queue (`GET /counsellor/queue`). Any other id gets "
        "`not_found`; one another counsellor is in gets `already_joined`."
    )


class CounsellorSay(_ClientFrame):
    """Counsellors only: write to the person of a conversation one has joined."""

    type: Literal["counsellor_message"]
    session_id: Identifier = Field(description="A conversation this counsellor has joined.")
    message_text: Annotated[str, StringConstraints(max_length=MESSAGE_TEXT_CEILING)] = Field(
        description="What the counsellor wrote, with the limits of `session_message`. Text the "
        "output screen stops (method or means detail) is not sent: `unsafe_message`."
    )
    client_message_id: Identifier | None = Field(
        default=None,
        description="Chosen by the client, one per message: resending it never stores or "
        "sends a second message (the counsellor gets the stored one again, `duplicate: true`).",
    )


class Leave(_ClientFrame):
    """Counsellors only: leave a conversation; the assistant answers again."""

    type: Literal["leave"]
    session_id: Identifier = Field(description="A conversation this counsellor has joined.")


ClientFrame = SessionMessage | Ping | Cancel | Auth | Resume | Join | CounsellorSay | Leave
# Frames only a counsellor's token may send; anyone else gets `forbidden`, the socket stays open.
COUNSELLOR_FRAMES = (Join, CounsellorSay, Leave)
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
    if isinstance(message, SessionMessage | CounsellorSay):
        if not message.message_text.strip():
            raise InvalidMessage("empty_message", "message_text must not be empty.")
        if len(message.message_text) > max_message_chars:
            raise InvalidMessage(
                "message_too_long",
                f"message_text is longer than {max_message_chars} characters.",
            )
        # Stored text and ids: PostgreSQL cannot hold NUL in text (SQLite could, so both refuse).
        for field in ("message_text", "client_message_id"):
            if NUL in (getattr(message, field) or ""):
                raise InvalidMessage("invalid_message", f"{field} must not contain NUL (U+0000).")
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

    timestamp: str = Field(
        default_factory=utc_timestamp,
        description="When the event was made: ISO-8601 UTC with milliseconds and a `Z`, e.g. "
        "`2024-11-12T10:00:00.123Z`. A replayed event keeps its own.",
    )
    # Per user, strictly increasing on every event after `connection` (see `resume`).
    seq: int | None = Field(
        default=None,
        description="Per user, strictly increasing across all of the user's sockets, with "
        "gaps. Absent on `connection` and on an `error` sent before it.",
    )

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


class Connection(ServerEventBase):
    """The socket is authenticated and registered: every later event of the user reaches it.
    The first event on a socket that was accepted."""

    type: Literal["connection"] = "connection"
    status: Literal["connected"] = Field(default="connected", description="Always `connected`.")
    # The subprotocol ("haven.msgpack.v1") or None for JSON.
    encoding: str | None = Field(
        default=None,
        description="`haven.msgpack.v1` when the client offered that subprotocol and frames "
        "are MessagePack; absent on a JSON socket.",
    )


class UserMessageEvent(ServerEventBase):
    """A message of the person was stored (the seed's "User Message Confirmation")."""

    type: Literal["user_message"] = "user_message"
    text: str = Field(description="The message as stored.")
    session_id: str = Field(description="The session it belongs to.")
    message_id: str = Field(description="The stored message's id.")
    client_message_id: str | None = Field(
        default=None, description="The client's id for it, when the client gave one."
    )
    # True when this repeats an already stored message (same `client_message_id`).
    duplicate: bool | None = Field(
        default=None,
        description="`true` when this repeats an already stored message (same "
        "`client_message_id`). Sent only to the socket that resent it when the message already "
        "has its reply; sent to every socket when the resend retries a turn that had failed.",
    )


class AssistantMessageStart(ServerEventBase):
    """The assistant's reply begins; its chunks follow."""

    type: Literal["assistant_message_start"] = "assistant_message_start"
    session_id: str = Field(description="The session of the turn.")
    message_id: str = Field(description="The reply's id, also its stored id; `cancel` can name it.")


class AssistantMessageChunk(ServerEventBase):
    """The next piece of the reply's text."""

    type: Literal["assistant_message_chunk"] = "assistant_message_chunk"
    chunk: str = Field(description="Text to append to the reply shown so far.")
    is_complete: bool = Field(
        default=False,
        description="Always `false`; the reply ends with `assistant_message_complete`.",
    )
    session_id: str = Field(description="The session of the turn.")
    message_id: str = Field(description="The reply's id, as in `assistant_message_start`.")


ReplyStatus = Literal["complete", "cancelled", "replaced"]


class CompletedMessage(BaseModel):
    """The finished reply, as stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(description="The whole reply; show this, it supersedes the chunks.")
    intent: str = Field(
        description="What the reply set out to do, e.g. `validate` or `crisis_support` (see "
        "[Intents and risk levels](#intents-and-risk-levels)); an open set of strings."
    )
    risk_level: str = Field(
        description="The assessed risk of the person's message: `none`, `low`, `medium`, "
        "`high` or `critical`."
    )
    # "cancelled": the client stopped it, `text` is what was written until then.
    # "replaced": the generated text failed the output check; `text` is the safe replacement
    # and supersedes every chunk streamed for this message.
    status: ReplyStatus = Field(
        default="complete",
        description="`cancelled`: the client stopped it, `text` is what was written until "
        "then. `replaced`: the generated text failed the output check; `text` is a safe "
        "replacement and supersedes every chunk streamed for this message.",
    )


class AssistantMessageComplete(ServerEventBase):
    """The reply is finished and stored."""

    type: Literal["assistant_message_complete"] = "assistant_message_complete"
    message: CompletedMessage = Field(description="The finished reply.")
    session_id: str = Field(description="The session of the turn.")
    message_id: str = Field(description="The reply's id, as in `assistant_message_start`.")


class EmergencyResources(BaseModel):
    """Crisis lines for the user's region (the seed's three keys, and additions)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    crisis_hotline: str = Field(description="A crisis line to call, e.g. `988`.")
    crisis_text: str = Field(description="A number to text, e.g. `741741`.")
    message: str = Field(description="What to tell the person, with the numbers.")
    # Additions to the seed's keys, per locale.
    locale: str | None = Field(
        default=None, description="The region these are for, e.g. `US` or `GB`."
    )
    text_instruction: str | None = Field(
        default=None, description="How to text, e.g. `Text HOME to 741741`."
    )
    emergency_number: str | None = Field(
        default=None, description="The emergency services number, e.g. `911`."
    )
    chat_url: str | None = Field(
        default=None, description="A crisis chat on the web, where the region has one."
    )


class SafetyEscalation(ServerEventBase):
    """Show the crisis resources now, before anything else: the person's message was assessed
    at high or critical risk, or could not be assessed."""

    type: Literal["safety_escalation"] = "safety_escalation"
    # A level name, or "unknown" when the message could not be assessed (fail closed).
    risk_level: str = Field(
        description="`high`, `critical`, or `unknown` when the message could not be assessed "
        "(fail closed)."
    )
    emergency_resources: EmergencyResources = Field(
        description="Crisis lines for the user's region."
    )
    session_id: str = Field(description="The session of the turn.")


class ErrorEvent(ServerEventBase):
    """Something failed (see [Error codes](#error-codes)). The socket stays open unless a
    close follows."""

    type: Literal["error"] = "error"
    message: str = Field(description="Fixed text, safe to show; never parse it.")
    code: str = Field(description="A stable machine code; switch on this.")
    retryable: bool = Field(
        description="Whether sending the same again (after `retry_after`) can succeed."
    )
    retry_after: float | None = Field(  # seconds, when waiting is what fixes it
        default=None, description="Seconds to wait first, when waiting is what fixes it."
    )

    @classmethod
    def from_error(cls, error: HavenError) -> ErrorEvent:
        # The one place a typed error becomes a wire event: fixed text, never the exception's.
        metrics.error_sent(error.code)
        return cls(
            message=error.message,
            code=error.code,
            retryable=error.retryable,
            retry_after=error.retry_after,
        )


class Pong(ServerEventBase):
    """The answer to `ping`, on that socket only."""

    type: Literal["pong"] = "pong"


class TokenExpiring(ServerEventBase):
    """The socket's token expires at `expires_at`; send `auth` with a fresh one before then."""

    type: Literal["token_expiring"] = "token_expiring"
    expires_at: str = Field(description="When the socket's token expires (ISO-8601 UTC).")
    grace_s: float = Field(
        description="Seconds after `expires_at` until the socket is closed with 4002."
    )


class Resumed(ServerEventBase):
    """Ends a replay: `replayed` events were sent again; `recovered` is false when some of
    what was missed is older than the retained window (reload the session's messages)."""

    type: Literal["resumed"] = "resumed"
    replayed: int = Field(description="How many events were sent again.")
    recovered: bool = Field(
        description="`false` when some of what was missed is no longer kept: reload the "
        "session's messages (`GET /sessions/{id}/messages`)."
    )
    last_seq: int = Field(description="The user's latest `seq` when the replay was made.")


class Authenticated(ServerEventBase):
    """A fresh token sent on an open socket was accepted."""

    type: Literal["authenticated"] = "authenticated"
    expires_at: str = Field(description="When the new token expires (ISO-8601 UTC).")


class CounsellorRef(BaseModel):
    """A counsellor as the person sees them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    display_name: str = Field(description="Their display name, else their username.")


class CounsellorJoined(ServerEventBase):
    """A counsellor joined the conversation: until `counsellor_left`, they answer, not the
    assistant. Also sent to a socket that connects while a counsellor is present."""

    type: Literal["counsellor_joined"] = "counsellor_joined"
    session_id: str = Field(description="The conversation.")
    counsellor: CounsellorRef = Field(description="Who joined.")


class CounsellorLeft(ServerEventBase):
    """The counsellor left the conversation: the assistant answers again from the next
    message."""

    type: Literal["counsellor_left"] = "counsellor_left"
    session_id: str = Field(description="The conversation.")
    counsellor: CounsellorRef = Field(description="Who left.")
    reason: Literal["left", "timed_out"] = Field(
        description="`left`: they chose to; `timed_out`: their connection was gone longer "
        "than the grace period."
    )


class CounsellorText(BaseModel):
    """A counsellor's message, as stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="The stored message's id.")
    text: str = Field(description="What the counsellor wrote.")
    counsellor: CounsellorRef = Field(description="Who wrote it.")


class CounsellorMessageEvent(ServerEventBase):
    """A counsellor wrote in the conversation: show it as theirs, not the assistant's."""

    type: Literal["counsellor_message"] = "counsellor_message"
    session_id: str = Field(description="The conversation.")
    message: CounsellorText = Field(description="The message.")
    client_message_id: str | None = Field(
        default=None, description="The counsellor client's id for it, when it gave one."
    )
    duplicate: bool | None = Field(
        default=None,
        description="`true` when this repeats an already stored message (same "
        "`client_message_id`); sent only to the counsellor, not to the person again.",
    )


class HistoryMessage(BaseModel):
    """One stored message of a conversation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="The stored message's id.")
    role: Literal["user", "assistant", "counsellor"] = Field(
        description="`user` (the person), `assistant` or `counsellor`."
    )
    text: str = Field(description="The message.")
    created_at: str = Field(description="When it was stored (ISO-8601 UTC).")
    risk_level: str | None = Field(
        default=None, description="The assessed risk of a person's message, once known."
    )
    counsellor: CounsellorRef | None = Field(
        default=None, description="Who wrote a `counsellor` message."
    )


class SessionHistory(ServerEventBase):
    """To the counsellor who joined: the conversation so far, oldest first. Every later event
    of the session follows it."""

    type: Literal["session_history"] = "session_history"
    session_id: str = Field(description="The conversation.")
    display_name: str = Field(description="How to address the person; nothing else of theirs.")
    messages: list[HistoryMessage] = Field(description="The stored messages, oldest first.")


class EscalationQueued(ServerEventBase):
    """To every connected counsellor: a conversation escalated and is in the queue."""

    type: Literal["escalation_queued"] = "escalation_queued"
    session_id: str = Field(description="The conversation.")
    risk_level: str = Field(description="`critical`, `high` or `unknown` (not assessed).")
    last_escalation_at: str = Field(description="When it escalated (ISO-8601 UTC).")
    display_name: str = Field(description="How to address the person; nothing else of theirs.")
    joined_by: str | None = Field(
        default=None, description="The display name of the counsellor in it; absent when none."
    )


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
    | Authenticated
    | CounsellorJoined
    | CounsellorLeft
    | CounsellorMessageEvent
    | SessionHistory
    | EscalationQueued,
    Field(discriminator="type"),
]
