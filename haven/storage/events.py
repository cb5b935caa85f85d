"""The per-user event log behind `resume`: numbered server events, kept for a short window.

Sequence numbers come from a per-user counter reserved in blocks (`users.event_seq_reserved`), so
a ConnectionActor rebuilt after its host died starts above any number the old one handed out,
even numbers it never wrote to the log (streamed chunks are not logged).

Frames carry what people wrote, so each is sealed under its user's data key like a message's
text, bound to its row (user, number, session).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from haven.errors import StoredDataUnreadable
from haven.storage.database import write_transaction
from haven.storage.keys import UserKeys
from haven.storage.sealed import event_identity
from haven.storage.tables import User, UserEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoggedEvent:
    seq: int
    created_at: datetime
    session_id: str | None
    payload: str


@dataclass(frozen=True)
class RecentEvents:
    events: list[LoggedEvent]
    # The highest number among entries that failed their integrity check and were left out
    # (0: none): a resume from before it cannot be complete.
    refused_up_to: int = 0


class EventLog:
    def __init__(self, engine: AsyncEngine, keys: UserKeys) -> None:
        self._engine = engine
        self._keys = keys

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
        sealer = await self._keys.for_writing(user_id)
        rows = [
            {
                "user_id": user_id,
                "seq": e.seq,
                "session_id": e.session_id,
                "created_at": e.created_at,
                "payload_sealed": sealer.seal(
                    e.payload, event_identity(user_id, e.seq, e.session_id)
                ),
            }
            for e in events
        ]
        async with self._engine.begin() as conn:
            await conn.execute(insert(UserEvent), rows)

    async def recent(self, user_id: str, *, newer_than: datetime, limit: int) -> RecentEvents:
        """The user's last `limit` events created after `newer_than`, oldest first. An entry
        that fails its integrity check is reported and left out, never replayed."""
        stmt = (
            select(
                UserEvent.seq, UserEvent.created_at, UserEvent.session_id, UserEvent.payload_sealed
            )
            .where(UserEvent.user_id == user_id, UserEvent.created_at > newer_than)
            .order_by(UserEvent.seq.desc())
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        if not rows:
            return RecentEvents([])
        events: list[LoggedEvent] = []
        refused = 0
        for r in reversed(rows):
            what = f"user_events[{user_id}, {r.seq}]"
            try:
                sealer = await self._keys.for_reading(user_id, what)
                identity = event_identity(user_id, r.seq, r.session_id)
                payload = sealer.open_(r.payload_sealed, identity, what=what)
            except StoredDataUnreadable:
                refused = r.seq
                continue
            events.append(LoggedEvent(r.seq, r.created_at, r.session_id, payload))
        return RecentEvents(events, refused)

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
