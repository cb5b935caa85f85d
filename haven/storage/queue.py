"""The counsellors' queue, read from the escalation audit trail, and the audit of what each
counsellor read.

A conversation is in the queue while it has an escalation a person should be reached for
(`high`, `critical`, or `unknown`: the classifier failed, so the worst is assumed) within the
window, and the session still exists: a person who deleted it has taken it out of reach.
Only the person's display name (or username) leaves the `users` table.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from haven.safety_policy import UNASSESSED
from haven.storage.tables import ChatSession, CounsellorRead, Escalation, User

# Most urgent first. An unassessed message ranks below an assessed high: its risk is unknown,
# not known to be high, but it is queued all the same (fail closed).
QUEUED_LEVELS: tuple[str, ...] = ("critical", "high", UNASSESSED)
# How far back an escalation keeps a conversation in the queue.
QUEUE_WINDOW = timedelta(hours=24)
_URGENCY = {level: len(QUEUED_LEVELS) - rank for rank, level in enumerate(QUEUED_LEVELS)}


class QueueEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    session_id: str
    # The person's account: routes to their ConnectionActor; never shown to a counsellor.
    user_id: str
    # The most urgent level escalated in the window.
    risk_level: str
    last_escalation_at: datetime
    display_name: str


class ReadRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    counsellor_id: str
    session_id: str
    action: str
    created_at: datetime


class CounsellorQueue:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def escalated_since(
        self, since: datetime, session_id: str | None = None
    ) -> list[QueueEntry]:
        """Every queued conversation (or only `session_id`'s), most urgent first, then most
        recently escalated."""
        stmt = (
            select(
                Escalation.session_id,
                ChatSession.user_id,
                Escalation.risk_level,
                Escalation.created_at,
                User.display_name,
                User.username,
            )
            .join(ChatSession, ChatSession.id == Escalation.session_id)
            .join(User, User.id == ChatSession.user_id)
            .where(Escalation.created_at >= since, Escalation.risk_level.in_(QUEUED_LEVELS))
        )
        if session_id is not None:
            stmt = stmt.where(Escalation.session_id == session_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        entries: dict[str, QueueEntry] = {}
        for row in rows:
            seen = entries.get(row.session_id)
            level = row.risk_level
            last = row.created_at
            if seen is not None:
                if _URGENCY[seen.risk_level] > _URGENCY[level]:
                    level = seen.risk_level
                last = max(last, seen.last_escalation_at)
            entries[row.session_id] = QueueEntry(
                session_id=row.session_id,
                user_id=row.user_id,
                risk_level=level,
                last_escalation_at=last,
                display_name=row.display_name or row.username,
            )
        return sorted(
            entries.values(),
            key=lambda e: (_URGENCY[e.risk_level], e.last_escalation_at),
            reverse=True,
        )

    async def record_reads(
        self, counsellor_id: str, session_ids: Iterable[str], action: str
    ) -> None:
        """One audit record per conversation read, in one transaction."""
        now = datetime.now(UTC)
        values = [
            {
                "id": str(uuid.uuid4()),
                "counsellor_id": counsellor_id,
                "session_id": session_id,
                "action": action,
                "created_at": now,
            }
            for session_id in session_ids
        ]
        if not values:
            return
        async with self._engine.begin() as conn:
            await conn.execute(insert(CounsellorRead), values)

    async def reads(
        self,
        counsellor_id: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[ReadRecord]:
        """The reads recorded, oldest first: of one counsellor, and within [since, until)."""
        stmt = select(CounsellorRead).order_by(CounsellorRead.created_at, CounsellorRead.session_id)
        if counsellor_id is not None:
            stmt = stmt.where(CounsellorRead.counsellor_id == counsellor_id)
        if since is not None:
            stmt = stmt.where(CounsellorRead.created_at >= since)
        if until is not None:
            stmt = stmt.where(CounsellorRead.created_at < until)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [ReadRecord.model_validate(dict(row)) for row in rows]
