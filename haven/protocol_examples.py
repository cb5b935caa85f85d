"""Example frames of every wire message, built through the models themselves.

They follow one conversation (connect, a message and its reply, a crisis message, a token
refresh, a reconnect), so ids and sequence numbers agree from one message to the next. Built
through the pydantic models, an example that stops fitting its model fails at import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from haven import protocol as p
from haven.codec import SUBPROTOCOL_MSGPACK
from haven.crisis_resources import resources_for
from haven.errors import HavenError, RateLimited, SessionNotFound, TokenExpired
from haven.settings import Settings

SESSION_ID = "8b6f3c3e-2f1a-4c55-9a51-0d6f2f1f7e21"
CLIENT_MESSAGE_ID = "c-20241112-0001"
USER_MESSAGE_ID = "0b9e4f0c-6a57-4d8e-b1f4-3c2d0b7a9e11"
REPLY_ID = "5d1c7a2e-9f83-4b6a-8e0d-7c4b2a1f6d30"
COUNSELLOR_MESSAGE_ID = "3f2a9c41-7b0e-4d6f-a8c5-1e9d2b4f6a70"
TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1LTEiLCJleHAiOjE3MzE0MDYwMDB9.c2ln"


@dataclass(frozen=True)
class Example:
    name: str
    summary: str
    message: BaseModel

    def payload(self) -> dict[str, Any]:
        """The frame exactly as it travels (server events as `to_json` writes them)."""
        if isinstance(self.message, p.ServerEventBase):
            frame: dict[str, Any] = json.loads(self.message.to_json())
            return frame
        return self.message.model_dump(mode="json", exclude_none=True)


def _at(clock: str) -> str:
    return f"2024-11-12T10:{clock}Z"


def _error(error: HavenError, clock: str, seq: int | None) -> p.ErrorEvent:
    # Field by field as `ErrorEvent.from_error` maps them, without counting an error as sent.
    return p.ErrorEvent(
        timestamp=_at(clock),
        seq=seq,
        message=error.message,
        code=error.code,
        retryable=error.retryable,
        retry_after=error.retry_after,
    )


def _client_frames() -> list[Example]:
    message = p.SessionMessage(
        type="session_message",
        session_id=SESSION_ID,
        message_text="I feel anxious today",
        client_message_id=CLIENT_MESSAGE_ID,
    )
    return [
        Example("message", "A message with the client's own id", message),
        Example(
            "message_without_id",
            "The original form, without `client_message_id`",
            p.SessionMessage(
                type="session_message", session_id=SESSION_ID, message_text="Can we talk?"
            ),
        ),
        Example("ping", "A keep-alive", p.Ping(type="ping")),
        Example(
            "cancel_reply", "Stop this reply only", p.Cancel(type="cancel", message_id=REPLY_ID)
        ),
        Example("cancel_any", "Stop whichever reply is being written", p.Cancel(type="cancel")),
        Example(
            "auth", "A token as the first frame, or a fresh one", p.Auth(type="auth", token=TOKEN)
        ),
        Example("resume", "Replay what came after seq 41", p.Resume(type="resume", last_seq=41)),
    ]


def _turn_events() -> list[Example]:
    reply = p.CompletedMessage(
        text="That sounds really hard. What has been weighing on you most today?",
        intent="question",
        risk_level="low",
    )
    stopped = reply.model_copy(update={"text": "That sounds really hard.", "status": "cancelled"})

    def stored(clock: str, seq: int, duplicate: bool | None = None) -> p.UserMessageEvent:
        return p.UserMessageEvent(
            timestamp=_at(clock),
            seq=seq,
            text="I feel anxious today",
            session_id=SESSION_ID,
            message_id=USER_MESSAGE_ID,
            client_message_id=CLIENT_MESSAGE_ID,
            duplicate=duplicate,
        )

    return [
        Example("connected", "A JSON socket", p.Connection(timestamp=_at("00:00.012"))),
        Example(
            "connected_msgpack",
            "A MessagePack socket",
            p.Connection(timestamp=_at("00:00.012"), encoding=SUBPROTOCOL_MSGPACK),
        ),
        Example(
            "stored",
            "The message was stored",
            stored("00:03.120", 42),
        ),
        Example(
            "resent",
            "The same `client_message_id` sent again",
            stored("00:09.410", 47, duplicate=True),
        ),
        Example(
            "start",
            "The reply begins",
            p.AssistantMessageStart(
                timestamp=_at("00:03.480"), seq=43, session_id=SESSION_ID, message_id=REPLY_ID
            ),
        ),
        Example(
            "chunk",
            "A piece of the reply",
            p.AssistantMessageChunk(
                timestamp=_at("00:03.510"),
                seq=44,
                chunk="That sounds really hard. ",
                session_id=SESSION_ID,
                message_id=REPLY_ID,
            ),
        ),
        Example(
            "complete",
            "The finished reply",
            p.AssistantMessageComplete(
                timestamp=_at("00:04.900"),
                seq=46,
                message=reply,
                session_id=SESSION_ID,
                message_id=REPLY_ID,
            ),
        ),
        Example(
            "cancelled",
            "A reply stopped by `cancel`",
            p.AssistantMessageComplete(
                timestamp=_at("00:04.020"),
                seq=46,
                message=stopped,
                session_id=SESSION_ID,
                message_id=REPLY_ID,
            ),
        ),
    ]


def _other_events() -> list[Example]:
    # Defaults only: the examples must not depend on this machine's HAVEN_* variables.
    resources = resources_for("US", Settings.model_construct())

    def escalation(risk_level: str) -> p.SafetyEscalation:
        return p.SafetyEscalation(
            timestamp=_at("01:02.300"),
            seq=49,
            risk_level=risk_level,
            emergency_resources=resources,
            session_id=SESSION_ID,
        )

    return [
        Example(
            "high_risk",
            "Crisis resources, before the reply",
            escalation("high"),
        ),
        Example(
            "not_assessed",
            "Screening failed: fail closed",
            escalation("unknown"),
        ),
        Example(
            "rate_limited",
            "Too fast: wait, then send again",
            _error(RateLimited(retry_after=1.5), "01:10.200", 50),
        ),
        Example(
            "session_not_found", "An unknown session", _error(SessionNotFound(), "01:11.000", 51)
        ),
        Example(
            "token_expired",
            "At connect, before close 4002",
            _error(TokenExpired(), "02:00.004", None),
        ),
        Example("pong", "The answer to `ping`", p.Pong(timestamp=_at("01:20.000"), seq=52)),
        Example(
            "token_expiring",
            "Send `auth` with a fresh token",
            p.TokenExpiring(
                timestamp=_at("55:00.000"), seq=53, expires_at=_at("59:00.000"), grace_s=30
            ),
        ),
        Example(
            "authenticated",
            "The fresh token was accepted",
            p.Authenticated(
                timestamp=_at("55:01.250"), seq=54, expires_at="2024-11-12T11:55:01.000Z"
            ),
        ),
        Example(
            "resumed",
            "Everything missed was replayed",
            p.Resumed(timestamp=_at("56:30.040"), seq=59, replayed=3, recovered=True, last_seq=58),
        ),
    ]


def _counsellor_examples() -> list[Example]:
    cara = p.CounsellorRef(display_name="Cara")
    said = p.CounsellorText(
        id=COUNSELLOR_MESSAGE_ID,
        text="Hi, I'm Cara, a counsellor. I'm here with you.",
        counsellor=cara,
    )
    return [
        Example(
            "join", "Join a conversation of the queue", p.Join(type="join", session_id=SESSION_ID)
        ),
        Example(
            "counsellor_writes",
            "A counsellor writes to the person",
            p.CounsellorSay(
                type="counsellor_message",
                session_id=SESSION_ID,
                message_text=said.text,
                client_message_id="k-20241112-0001",
            ),
        ),
        Example(
            "leave", "Hand back to the assistant", p.Leave(type="leave", session_id=SESSION_ID)
        ),
        Example(
            "escalation_queued",
            "To counsellors: a conversation escalated",
            p.EscalationQueued(
                timestamp=_at("01:02.310"),
                seq=7,
                session_id=SESSION_ID,
                risk_level="high",
                last_escalation_at=_at("01:02.305"),
                display_name="Ana",
            ),
        ),
        Example(
            "session_history",
            "To the counsellor who joined",
            p.SessionHistory(
                timestamp=_at("02:10.050"),
                seq=8,
                session_id=SESSION_ID,
                display_name="Ana",
                messages=[
                    p.HistoryMessage(
                        id=USER_MESSAGE_ID,
                        role="user",
                        text="I feel anxious today",
                        created_at=_at("00:03.118"),
                        risk_level="low",
                    ),
                    p.HistoryMessage(
                        id=REPLY_ID,
                        role="assistant",
                        text="That sounds really hard. What has been weighing on you most today?",
                        created_at=_at("00:04.890"),
                    ),
                ],
            ),
        ),
        Example(
            "counsellor_joined",
            "To the person: a counsellor is here",
            p.CounsellorJoined(
                timestamp=_at("02:10.060"), seq=60, session_id=SESSION_ID, counsellor=cara
            ),
        ),
        Example(
            "counsellor_message",
            "A counsellor's message",
            p.CounsellorMessageEvent(
                timestamp=_at("02:31.400"), seq=61, session_id=SESSION_ID, message=said
            ),
        ),
        Example(
            "counsellor_left",
            "The assistant answers again",
            p.CounsellorLeft(
                timestamp=_at("20:05.000"),
                seq=70,
                session_id=SESSION_ID,
                counsellor=cara,
                reason="left",
            ),
        ),
    ]


EXAMPLES: tuple[Example, ...] = (
    *_client_frames(),
    *_turn_events(),
    *_other_events(),
    *_counsellor_examples(),
)


def examples_of(model: type[BaseModel]) -> list[Example]:
    return [example for example in EXAMPLES if type(example.message) is model]
