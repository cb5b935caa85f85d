"""The database schema, as ORM classes. `migrations/versions` must create exactly this."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so a later migration can refer to (and SQLite batch mode can rebuild)
# a constraint by the same name on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

UUID_LENGTH = 36


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL keeps the zone (TIMESTAMPTZ); SQLite has no zone at all and hands back naive values,
    so values are converted to UTC on the way in and marked as UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store timezone-aware UTC timestamps only")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    # As the person typed it, for display.
    username: Mapped[str] = mapped_column(Text, nullable=False)
    # NFKC + casefold of `username`: the unique key, so "Alice" and "alice" are one account.
    username_key: Mapped[str] = mapped_column(Text, nullable=False)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # Region code ("US", "GB", ...) that picks the crisis resources shown; None: the default.
    locale: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Event sequence numbers below this are handed out (in blocks), so a ConnectionActor
    # rebuilt after a crash continues above everything its predecessor may have sent.
    event_seq_reserved: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    # Events at or below this sequence number were dropped from the replay log.
    event_log_floor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    # What the account may do beyond its own conversations (haven.roles).
    role: Mapped[str] = mapped_column(String(16), nullable=False, server_default="user")
    # The only thing about a person a counsellor is shown; None: the username stands in.
    display_name: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        UniqueConstraint("username_key"),
        CheckConstraint("role IN ('user', 'counsellor', 'admin')", name="role"),
    )


class ChatSession(Base):
    __tablename__ = "chat_sessions"

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(UUID_LENGTH),
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        String(UUID_LENGTH), ForeignKey("chat_sessions.id", ondelete="CASCADE"), nullable=False
    )
    # Denormalised owner: export and erasure of one person's data need no join.
    user_id: Mapped[str] = mapped_column(
        String(UUID_LENGTH),
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    # Position within the session (1, 2, ...). Timestamps can tie and UUIDs are random, so this
    # is the only total order of a conversation; unique per session, assigned at insert.
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    # The message's text, sealed under its user's data key (`haven.storage.sealed`); the
    # plain text is never stored.
    text_sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    intent: Mapped[str | None] = mapped_column(Text, nullable=True)
    risk_level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # The client's own id for a user message: a resend with the same id is the same message.
    client_message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Assistant replies: "complete", "cancelled" (partial text) or "replaced" (safe text).
    status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Who wrote a `counsellor` message (a plain id: the account may be erased, the message not).
    author_id: Mapped[str | None] = mapped_column(String(UUID_LENGTH), nullable=True)

    __table_args__ = (
        # Also the index that reads a session in order and finds its last N messages.
        UniqueConstraint("session_id", "seq"),
        UniqueConstraint("user_id", "client_message_id"),
        CheckConstraint("role IN ('user', 'assistant', 'counsellor')", name="role"),
    )


class UserEvent(Base):
    """The per-user log of server events that a reconnecting client can ask for again."""

    __tablename__ = "user_events"

    user_id: Mapped[str] = mapped_column(
        String(UUID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # Events of a session go with it when it is deleted (they carry message text).
    session_id: Mapped[str | None] = mapped_column(
        String(UUID_LENGTH),
        ForeignKey("chat_sessions.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # The event's frame, sealed like a message's text: frames carry what was written.
    payload_sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class UserKey(Base):
    """A user's data key, wrapped by a master key (`haven.storage.keys`). Deleting the row
    (with the user) leaves every sealed value of that user unreadable wherever it was copied."""

    __tablename__ = "user_keys"

    user_id: Mapped[str] = mapped_column(
        String(UUID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    # Which master key wrapped it (`haven.storage.master_key.key_id`), so a rotation knows
    # what it has re-wrapped.
    master_key_id: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class RevokedToken(Base):
    """Access tokens ended by logout before their expiry; kept until they would have expired."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(UUID_LENGTH), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class Escalation(Base):
    """Audit record of one safety escalation. Never holds message text.

    Plain ids rather than foreign keys: the record outlives the deletion of the session it
    refers to, as referral reporting requires.
    """

    __tablename__ = "escalations"

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    # None once the person erased their account: the record still counts in the report, but
    # no longer leads to anyone.
    user_id: Mapped[str | None] = mapped_column(String(UUID_LENGTH), nullable=True, index=True)
    session_id: Mapped[str | None] = mapped_column(String(UUID_LENGTH), nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(UUID_LENGTH), nullable=True)
    risk_level: Mapped[str] = mapped_column(String(16), nullable=False)
    scores: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: level -> probability
    model_id: Mapped[str] = mapped_column(Text, nullable=False)
    model_version: Mapped[str] = mapped_column(Text, nullable=False)
    raised_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class ThrottleCounter(Base):
    """Counters behind login and registration throttling, shared by every Gateway replica.

    `key` is a SHA-256 of what is counted ("account:<username>", "address:<ip>", ...), so the
    table holds no username or address in the clear.
    """

    __tablename__ = "auth_throttle"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CounsellorRead(Base):
    """Audit record of a counsellor reading a person's conversation: who, which, when, how.

    Plain ids, like `Escalation`: the record outlives the session it names."""

    __tablename__ = "counsellor_reads"

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    counsellor_id: Mapped[str] = mapped_column(String(UUID_LENGTH), nullable=False, index=True)
    # None once the person whose conversation it was erased their account.
    session_id: Mapped[str | None] = mapped_column(String(UUID_LENGTH), nullable=True, index=True)
    # What was read: "queue" (listed with its level and the display name) or "join" (the whole
    # conversation, then its events live).
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class CounsellorPresence(Base):
    """The counsellor in a conversation, and the state of their presence (`haven.presence`).

    No row: the assistant answers. It goes with the session when the person deletes it."""

    __tablename__ = "counsellor_presence"

    session_id: Mapped[str] = mapped_column(
        String(UUID_LENGTH), ForeignKey("chat_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    # The person whose conversation it is, so their ConnectionActor finds it when rebuilt.
    user_id: Mapped[str] = mapped_column(String(UUID_LENGTH), nullable=False, index=True)
    counsellor_id: Mapped[str] = mapped_column(String(UUID_LENGTH), nullable=False, index=True)
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # While the counsellor has no socket open: when the assistant takes the conversation back.
    grace_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
