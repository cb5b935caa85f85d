"""The per-user event log behind `resume`: numbered server events, kept for a short window.

Sequence numbers come from a per-user counter reserved in blocks (`users.event_seq_reserved`), so
a ConnectionActor rebuilt after its host died starts above any number the old one handed out,
even numbers it never wrote to the log (streamed chunks are not logged).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from haven.storage.database import write_transaction
from haven.storage.tables import User, UserEvent


@dataclass(frozen=True)
class LoggedEvent:
    seq: int
    created_at: datetime
    session_id: str | None
    payload: str


class EventLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def reserve(self, user_id: str, block: int) -> tuple[int, int]:
        """Reserves `block` sequence numbers: returns [start, end) with start above all earlier."""
        async with self._engine.begin() as conn:
            stmt = (
                update(User)
                .where(User.id == user_id)
                .values(event_seq_reserved=User.event_seq_reserved + block)
                .returning(User.event_seq_reserved)
            )
            end = (await conn.execute(stmt)).scalar_one_or_none()
        if end is None:
            raise LookupError("unknown user")
        return end - block, end

    async def append(self, user_id: str, events: list[LoggedEvent]) -> None:
        if not events:
            return
        rows = [
            {
                "user_id": user_id,
                "seq": e.seq,
                "session_id": e.session_id,
                "created_at": e.created_at,
                "payload": e.payload,
            }
            for e in events
        ]
        async with self._engine.begin() as conn:
            await conn.execute(insert(UserEvent), rows)

    async def recent(self, user_id: str, *, newer_than: datetime, limit: int) -> list[LoggedEvent]:
        """The user's last `limit` events created after `newer_than`, oldest first."""
        stmt = (
            select(UserEvent.seq, UserEvent.created_at, UserEvent.session_id, UserEvent.payload)
            .where(UserEvent.user_id == user_id, UserEvent.created_at > newer_than)
            .order_by(UserEvent.seq.desc())
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [LoggedEvent(r.seq, r.created_at, r.session_id, r.payload) for r in reversed(rows)]

    async def floor(self, user_id: str) -> int:
        """The highest sequence number dropped from the log (0: nothing dropped yet)."""
        stmt = select(User.event_log_floor).where(User.id == user_id)
        async with self._engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one_or_none() or 0)

    async def prune(self, user_id: str, *, older_than: datetime) -> None:
        """Drops events created at or before `older_than`, raising the floor past them."""
        old = (UserEvent.user_id == user_id) & (UserEvent.created_at <= older_than)
        # Reads the highest dropped number, then writes: the write lock must come first.
        async with write_transaction(self._engine) as conn:
            dropped = (await conn.execute(select(func.max(UserEvent.seq)).where(old))).scalar()
            if dropped is None:
                return
            await conn.execute(
                update(User)
                .where(User.id == user_id, User.event_log_floor < dropped)
                .values(event_log_floor=dropped)
            )
            await conn.execute(delete(UserEvent).where(old))
