"""Retention: conversations nobody has written to for `retention_days` are deleted, each as
`DELETE /sessions/{id}` deletes one (its messages, event log and counsellor presence with it;
the escalation audit keeps its rows, which hold no text). Off unless `retention_days` is set.

Every Gateway replica runs the check (`run_periodically`); deleting is idempotent, so replicas
running it at once do no harm. `haven retention run` does one pass by hand.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from haven.storage.database import write_transaction
from haven.storage.tables import ChatSession, Message

logger = logging.getLogger(__name__)

CHECK_INTERVAL_S = 3600.0
BATCH_SIZE = 500


def cutoff(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


@dataclass(frozen=True)
class Deleted:
    """A conversation retention deleted, and whose it was (to drop it from memory too)."""

    session_id: str
    user_id: str


async def delete_expired(engine: AsyncEngine, older_than: datetime) -> list[Deleted]:
    """Deletes every session whose last message (or, without any, whose creation) is before
    `older_than`; returns them."""
    deleted: list[Deleted] = []
    while True:
        batch = await _expired(engine, older_than)
        if not batch:
            return deleted
        for session_id in batch:
            owner = await _delete_if_still_expired(engine, session_id, older_than)
            if owner is not None:
                deleted.append(Deleted(session_id, owner))
        if len(batch) < BATCH_SIZE:
            return deleted


async def _expired(engine: AsyncEngine, older_than: datetime) -> list[str]:
    last = (
        select(Message.session_id, func.max(Message.created_at).label("last_at"))
        .group_by(Message.session_id)
        .subquery()
    )
    stmt = (
        select(ChatSession.id)
        .outerjoin(last, last.c.session_id == ChatSession.id)
        .where(func.coalesce(last.c.last_at, ChatSession.created_at) < older_than)
        .order_by(ChatSession.id)
        .limit(BATCH_SIZE)
    )
    async with engine.connect() as conn:
        return list((await conn.execute(stmt)).scalars())


async def _delete_if_still_expired(
    engine: AsyncEngine, session_id: str, older_than: datetime
) -> str | None:
    """The deleted session's owner, or None if it was kept (or already gone)."""
    # Checked again in the deleting statement: a message that arrived meanwhile keeps it.
    recent = exists().where(
        and_(Message.session_id == session_id, Message.created_at >= older_than)
    )
    stmt = (
        delete(ChatSession)
        .where(ChatSession.id == session_id, ChatSession.created_at < older_than, ~recent)
        .returning(ChatSession.user_id)
    )
    async with write_transaction(engine) as conn:
        owner: str | None = (await conn.execute(stmt)).scalar_one_or_none()
        return owner


async def run_periodically(
    engine: AsyncEngine,
    days: int,
    *,
    interval_s: float = CHECK_INTERVAL_S,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_deleted: Callable[[list[Deleted]], Awaitable[None]] | None = None,
) -> None:
    """Deletes expired conversations now and every `interval_s` until cancelled; `on_deleted`
    then drops them from what the service holds in memory (the replay log)."""
    while True:
        try:
            deleted = await delete_expired(engine, cutoff(clock(), days))
            if deleted:
                logger.info(
                    "retention: deleted %d conversations older than %d days", len(deleted), days
                )
                if on_deleted is not None:
                    await on_deleted(deleted)
        except Exception:
            # The next pass tries again; the service itself is unaffected.
            logger.warning("retention pass failed", exc_info=True)
        await asyncio.sleep(interval_s)
