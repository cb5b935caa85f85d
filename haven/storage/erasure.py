"""Erasing a person (GDPR Art. 17): everything Haven holds about them, in one transaction.

Deleting the `users` row takes their sessions, messages, event log and data key with it (ON
DELETE CASCADE); with the data key gone, a copy of any of their sealed rows (a replica, a dump
taken earlier) no longer opens once the master key that wrapped it is retired. What holds the
person's id without a foreign key is cleared here: their revoked tokens and throttle counters
go; the escalation audit keeps its rows, so the operator's report counts the same, with the
links to the person, their sessions and messages set to NULL, and so do the counsellors' reads
of their conversations. A counsellor's own messages in other people's conversations stay (they
belong to those conversations) without the link to the erased author.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from haven.storage.database import write_transaction
from haven.storage.keys import UserKeys
from haven.storage.tables import (
    ChatSession,
    CounsellorPresence,
    CounsellorRead,
    Escalation,
    Message,
    RevokedToken,
    ThrottleCounter,
    User,
)
from haven.storage.throttle import throttle_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErasedAccount:
    user_id: str
    session_ids: list[str]


def user_throttle_keys(user_id: str, username_key: str) -> list[str]:
    """The throttle counters that name this person (by hash): `haven.throttle` counts them."""
    return [throttle_key("login-account", username_key), throttle_key("export-user", user_id)]


class Erasure:
    def __init__(self, engine: AsyncEngine, keys: UserKeys) -> None:
        self._engine = engine
        self._keys = keys

    async def erase(self, user_id: str) -> ErasedAccount | None:
        """Erases the account; None when there is no such account (any more)."""
        async with write_transaction(self._engine) as conn:
            username_key = (
                await conn.execute(select(User.username_key).where(User.id == user_id))
            ).scalar_one_or_none()
            if username_key is None:
                return None
            sessions = select(ChatSession.id).where(ChatSession.user_id == user_id)
            session_ids = list((await conn.execute(sessions)).scalars())
            await conn.execute(
                update(Escalation)
                .where(Escalation.user_id == user_id)
                .values(user_id=None, session_id=None, message_id=None)
            )
            if session_ids:
                await conn.execute(
                    update(CounsellorRead)
                    .where(CounsellorRead.session_id.in_(session_ids))
                    .values(session_id=None)
                )
            await conn.execute(
                update(Message).where(Message.author_id == user_id).values(author_id=None)
            )
            await conn.execute(
                delete(CounsellorPresence).where(CounsellorPresence.counsellor_id == user_id)
            )
            await conn.execute(delete(RevokedToken).where(RevokedToken.user_id == user_id))
            await conn.execute(
                delete(ThrottleCounter).where(
                    ThrottleCounter.key.in_(user_throttle_keys(user_id, username_key))
                )
            )
            # Sessions, messages, the event log, presence and the data key go with it.
            await conn.execute(delete(User).where(User.id == user_id))
        self._keys.forget(user_id)
        await self._checkpoint()
        return ErasedAccount(user_id, session_ids)

    async def _checkpoint(self) -> None:
        """SQLite: moves the zeroed pages (secure_delete) into the file and empties the WAL, so
        the deleted rows' old page images do not linger there. Best effort: a reader holding
        an old snapshot lets it finish later, at SQLite's next automatic checkpoint."""
        if self._engine.dialect.name != "sqlite":
            return
        try:
            async with self._engine.connect() as conn:
                # On the driver's connection: outside the transaction SQLAlchemy would begin.
                driver = (await conn.get_raw_connection()).driver_connection
                if driver is not None:
                    await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception:
            logger.warning("could not checkpoint the SQLite WAL after an erasure")
