"""Every read and write of users, chat sessions and messages.

Message text is health data: nothing else in Haven touches the `messages` table. Its text is
sealed here on the way in and opened on the way out (`haven.storage.keys`, `haven.storage.crypto`),
so no plain text reaches a SQL parameter, and every caller still sees plain `MessageRecord`s.

Ownership is part of every session query (`WHERE id = :session AND user_id = :user`), and a
session that exists but belongs to someone else gets the same `SessionNotFound` as one that does
not exist, so one user can never learn whether another user's session id is real.
"""

from __future__ import annotations

import contextlib
import unicodedata
import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from types import TracebackType

from sqlalchemy import RowMapping, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from haven.errors import SessionNotFound, UsernameTaken
from haven.risk import RiskLevel
from haven.roles import DEFAULT_ROLE, Role
from haven.storage.audit import AuditLog
from haven.storage.database import create_engine, write_transaction
from haven.storage.erasure import Erasure
from haven.storage.events import EventLog
from haven.storage.export import Exporter
from haven.storage.keys import UserKeys
from haven.storage.master_key import MasterKeys, configured_master_keys
from haven.storage.presence import PresenceLog
from haven.storage.queue import CounsellorQueue
from haven.storage.records import (
    MESSAGE_ROLES,
    MessageRecord,
    MessageRole,
    SessionRecord,
    UserRecord,
)
from haven.storage.revocations import Revocations
from haven.storage.sealed import message_identity
from haven.storage.tables import ChatSession, Message, User
from haven.storage.throttle import ThrottleCounters

_USER_COLUMNS = (
    User.id,
    User.username,
    User.password_hash,
    User.created_at,
    User.locale,
    User.role,
    User.display_name,
)
_SESSION_COLUMNS = (ChatSession.id, ChatSession.user_id, ChatSession.created_at)
_MESSAGE_COLUMNS = (
    Message.id,
    Message.session_id,
    Message.role,
    Message.text_sealed,
    Message.user_id,
    Message.intent,
    Message.risk_level,
    Message.created_at,
    Message.client_message_id,
    Message.status,
    Message.author_id,
)


# Bound parameters in one `IN (...)`: well under SQLite's and asyncpg's limits.
_IDS_PER_STATEMENT = 500


def normalize_username(username: str) -> str:
    """The key usernames are compared by: case and Unicode width variants are one name."""
    folded = unicodedata.normalize("NFKC", username).casefold()
    return unicodedata.normalize("NFKC", folded).strip()


def _canonical_uuid(value: object) -> str | None:
    """`value` as a lower-case hyphenated UUID, or None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


class DuplicateMessage(Exception):
    """The user already sent a message with this `client_message_id`."""

    def __init__(self, existing: MessageRecord) -> None:
        super().__init__("duplicate client_message_id")
        self.existing = existing


def _now() -> datetime:
    return datetime.now(UTC)


def _risk_level(value: str | None) -> RiskLevel | None:
    return None if value is None else RiskLevel(value)  # ValueError for an unknown level


class Store:
    def __init__(self, engine: AsyncEngine, master_keys: MasterKeys | None = None) -> None:
        """`master_keys`: by default those the environment configures (`HAVEN_MASTER_KEY`, or
        in development the generated one)."""
        self._engine = engine
        self.keys = UserKeys(engine, master_keys or configured_master_keys())
        self.events = EventLog(engine, self.keys)
        self.erasure = Erasure(engine, self.keys)
        self.export = Exporter(engine, self.keys)
        self.audit = AuditLog(engine)
        self.revocations = Revocations(engine)
        self.throttle = ThrottleCounters(engine)
        self.queue = CounsellorQueue(engine)
        self.presence = PresenceLog(engine)

    @classmethod
    def from_url(cls, url: str, master_keys: MasterKeys | None = None) -> Store:
        return cls(create_engine(url), master_keys)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def close(self) -> None:
        await self._engine.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _write_transaction(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return write_transaction(self._engine)

    # Users

    async def create_user(
        self,
        username: str,
        password_hash: str,
        locale: str | None = None,
        role: Role = DEFAULT_ROLE,
    ) -> UserRecord:
        key = normalize_username(username)
        if not key:
            raise ValueError("username is empty")
        record = UserRecord(
            id=str(uuid.uuid4()),
            username=username,
            password_hash=password_hash,
            created_at=_now(),
            locale=locale,
            role=role,
        )
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(User).values(**record.model_dump(), username_key=key))
        except IntegrityError as error:
            # The only constraint a fresh random id can hit is the unique username key.
            raise UsernameTaken() from error
        return record

    async def get_user_by_username(self, username: str) -> UserRecord | None:
        stmt = select(*_USER_COLUMNS).where(User.username_key == normalize_username(username))
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).mappings().one_or_none()
        return UserRecord.model_validate(row) if row is not None else None

    async def get_user(self, user_id: str) -> UserRecord | None:
        stmt = select(*_USER_COLUMNS).where(User.id == user_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).mappings().one_or_none()
        return UserRecord.model_validate(row) if row is not None else None

    async def existing_user_ids(self, user_ids: Collection[str]) -> set[str]:
        """Those of `user_ids` whose account still exists (one statement per 500 ids)."""
        wanted = list(dict.fromkeys(user_ids))
        found: set[str] = set()
        async with self._engine.connect() as conn:
            for start in range(0, len(wanted), _IDS_PER_STATEMENT):
                chunk = wanted[start : start + _IDS_PER_STATEMENT]
                stmt = select(User.id).where(User.id.in_(chunk))
                found.update((await conn.execute(stmt)).scalars())
        return found

    async def set_role(self, user_id: str, role: Role) -> UserRecord | None:
        """The account with its new role, or None when there is no such account."""
        async with self._write_transaction() as conn:
            result = await conn.execute(update(User).where(User.id == user_id).values(role=role))
        if result.rowcount == 0:
            return None
        return await self.get_user(user_id)

    # Chat sessions

    async def create_session(self, user_id: str) -> SessionRecord:
        """A new, empty session; LookupError if the user does not exist (e.g. was erased)."""
        record = SessionRecord(id=str(uuid.uuid4()), user_id=user_id, created_at=_now())
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(ChatSession).values(**record.model_dump()))
        except IntegrityError as error:
            raise LookupError("unknown user") from error
        return record

    async def list_sessions(self, user_id: str) -> list[SessionRecord]:
        """The user's sessions, newest first."""
        stmt = (
            select(*_SESSION_COLUMNS)
            .where(ChatSession.user_id == user_id)
            .order_by(ChatSession.created_at.desc(), ChatSession.id.desc())
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [SessionRecord.model_validate(row) for row in rows]

    async def get_session(self, user_id: str, session_id: str) -> SessionRecord:
        sid = _canonical_uuid(session_id)
        if sid is None:
            raise SessionNotFound()
        stmt = select(*_SESSION_COLUMNS).where(
            ChatSession.id == sid, ChatSession.user_id == user_id
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).mappings().one_or_none()
        if row is None:
            raise SessionNotFound()
        return SessionRecord.model_validate(row)

    async def delete_session(self, user_id: str, session_id: str) -> None:
        """Deletes the session and, by ON DELETE CASCADE, all of its messages."""
        sid = _canonical_uuid(session_id)
        if sid is None:
            raise SessionNotFound()
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(ChatSession).where(ChatSession.id == sid, ChatSession.user_id == user_id)
            )
        if result.rowcount != 1:
            raise SessionNotFound()

    # Messages

    async def add_message(
        self,
        user_id: str,
        session_id: str,
        role: MessageRole,
        text: str,
        intent: str | None = None,
        risk_level: str | None = None,
        *,
        message_id: str | None = None,
        client_message_id: str | None = None,
        status: str | None = None,
        author_id: str | None = None,
    ) -> MessageRecord:
        """Stores one message at the end of the session; it is committed when this returns.

        `message_id` lets the caller announce a reply's id while it streams and store it under
        that id once complete; by default a new UUID. A `client_message_id` the user already
        used raises `DuplicateMessage` carrying the stored message. `author_id`: the counsellor
        who wrote a `counsellor` message.

        PostgreSQL cannot store NUL in text, so on every backend a NUL in `text` (a model's
        reply may hold one; the protocol refuses it in a person's message) is stored as U+FFFD,
        and one in `client_message_id` raises ValueError.
        """
        if role not in MESSAGE_ROLES:
            raise ValueError(f"unknown message role {role!r}")
        if client_message_id is not None and "\x00" in client_message_id:
            raise ValueError("client_message_id must not contain NUL")
        text = text.replace("\x00", "\ufffd")
        level = _risk_level(risk_level)
        sid = _canonical_uuid(session_id)
        if sid is None:
            raise SessionNotFound()
        if message_id is None:
            mid = str(uuid.uuid4())
        else:
            checked = _canonical_uuid(message_id)
            if checked is None:
                raise ValueError("message_id must be a UUID")
            mid = checked
        record = MessageRecord(
            id=mid,
            session_id=sid,
            role=role,
            text=text,
            intent=intent,
            risk_level=level,
            created_at=_now(),
            client_message_id=client_message_id,
            status=status,
            author_id=author_id,
        )
        owned = (
            select(ChatSession.id)
            .where(ChatSession.id == sid, ChatSession.user_id == user_id)
            # Holds the session row until commit: messages of one session are numbered one at
            # a time (PostgreSQL), and the session cannot be deleted in between.
            .with_for_update()
        )
        next_seq = (
            select(func.coalesce(func.max(Message.seq), 0) + 1)
            .where(Message.session_id == sid)
            .scalar_subquery()
        )
        try:
            sealer = await self.keys.for_writing(user_id)
        except LookupError:
            raise SessionNotFound() from None  # the user is gone, and with them every session
        sealed = sealer.seal(record.text, message_identity(mid, user_id, sid, role))
        values = record.model_dump(mode="python", exclude={"text"}) | {
            "user_id": user_id,
            "seq": next_seq,
            "text_sealed": sealed,
        }
        try:
            async with self._write_transaction() as conn:
                if (await conn.execute(owned)).first() is None:
                    raise SessionNotFound()
                await conn.execute(insert(Message).values(**values))
        except IntegrityError:
            if client_message_id is None:
                raise
            existing = await self.find_client_message(user_id, client_message_id)
            if existing is None:
                raise
            raise DuplicateMessage(existing) from None
        return record

    async def find_client_message(
        self, user_id: str, client_message_id: str
    ) -> MessageRecord | None:
        stmt = select(*_MESSAGE_COLUMNS).where(
            Message.user_id == user_id, Message.client_message_id == client_message_id
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).mappings().one_or_none()
        return await self._opened(row) if row is not None else None

    async def reply_to(self, user_id: str, message: MessageRecord) -> MessageRecord | None:
        """The assistant message stored right after `message` in its session, if any."""
        stmt = select(*_MESSAGE_COLUMNS).where(
            Message.session_id == message.session_id,
            Message.user_id == user_id,
            Message.seq
            == select(Message.seq).where(Message.id == message.id).scalar_subquery() + 1,
            Message.role == "assistant",
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).mappings().one_or_none()
        return await self._opened(row) if row is not None else None

    async def list_messages(
        self, user_id: str, session_id: str, limit: int | None = None
    ) -> list[MessageRecord]:
        """The session's messages, oldest first; with `limit`, only the last `limit` of them."""
        if limit is not None and limit < 0:
            raise ValueError("limit must not be negative")
        sid = _canonical_uuid(session_id)
        if sid is None:
            raise SessionNotFound()
        owned = select(ChatSession.id).where(ChatSession.id == sid, ChatSession.user_id == user_id)
        newest_first = (
            select(*_MESSAGE_COLUMNS)
            .where(Message.session_id == sid)
            .order_by(Message.seq.desc())
            .limit(limit)
        )
        # One transaction, so the ownership check and the read see the same snapshot.
        async with self._engine.connect() as conn:
            if (await conn.execute(owned)).first() is None:
                raise SessionNotFound()
            rows = (await conn.execute(newest_first)).mappings().all()
        return [await self._opened(row) for row in reversed(rows)]

    async def _opened(self, row: RowMapping) -> MessageRecord:
        """The record of a `_MESSAGE_COLUMNS` row, its text opened; StoredDataUnreadable
        (reported) for a text that was altered or moved from another row."""
        what = f"messages[{row['id']}]"
        sealer = await self.keys.for_reading(row["user_id"], what)
        identity = message_identity(row["id"], row["user_id"], row["session_id"], row["role"])
        text = sealer.open_(row["text_sealed"], identity, what=what)
        return MessageRecord.model_validate(dict(row) | {"text": text})

    async def set_risk_level(self, message_id: str, risk_level: str) -> None:
        """Records the assessed risk of a stored message; a message deleted since is ignored."""
        level = _risk_level(risk_level)
        mid = _canonical_uuid(message_id)
        if mid is None:
            raise ValueError("message_id must be a UUID")
        stmt = update(Message).where(Message.id == mid).values(risk_level=level)
        async with self._engine.begin() as conn:
            await conn.execute(stmt)
