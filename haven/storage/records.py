"""What the store hands out: immutable copies of rows, detached from any database session."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from haven.risk import RiskLevel
from haven.roles import DEFAULT_ROLE, Role

MessageRole = Literal["user", "assistant", "counsellor"]
MESSAGE_ROLES: tuple[MessageRole, ...] = ("user", "assistant", "counsellor")


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class UserRecord(_Record):
    id: str
    username: str
    password_hash: str
    created_at: AwareDatetime
    locale: str | None = None
    role: Role = DEFAULT_ROLE
    display_name: str | None = None


class SessionRecord(_Record):
    id: str
    user_id: str
    created_at: AwareDatetime


class MessageRecord(_Record):
    id: str
    session_id: str
    role: MessageRole
    text: str
    intent: str | None
    risk_level: RiskLevel | None
    created_at: AwareDatetime
    client_message_id: str | None = None
    status: str | None = None
    # The counsellor who wrote a `counsellor` message.
    author_id: str | None = None
