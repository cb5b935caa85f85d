"""The `counsellor_presence` table: which counsellor is in which conversation, in which state.

Only the person's ConnectionActor changes a session's row (it owns the state machine in
`haven.presence`); everyone else reads it (the queue's "joined by", a counsellor's actor
finding the conversations it is in)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy import ColumnElement, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from haven.errors import AlreadyJoined, NotFound
from haven.presence import Presence, current
from haven.storage.database import write_transaction
from haven.storage.tables import CounsellorPresence, User

_COLUMNS = (
    CounsellorPresence.session_id,
    CounsellorPresence.user_id,
    CounsellorPresence.counsellor_id,
    CounsellorPresence.state,
    CounsellorPresence.joined_at,
    CounsellorPresence.grace_until,
)


class PresenceRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    session_id: str
    user_id: str
    counsellor_id: str
    state: Presence
    joined_at: AwareDatetime
    grace_until: AwareDatetime | None = None

    def now(self, moment: datetime | None = None) -> Presence:
        return current(self.state, self.grace_until, moment or datetime.now(UTC))


class PresenceLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def join(self, user_id: str, session_id: str, counsellor_id: str) -> PresenceRecord:
        """`counsellor_id` is now present in the session. `AlreadyJoined` while another
        counsellor is (a grace period that ran out no longer counts); the same counsellor
        joining again is present again. `NotFound` if the session is gone."""
        now = datetime.now(UTC)
        record = PresenceRecord(
            session_id=session_id,
            user_id=user_id,
            counsellor_id=counsellor_id,
            state=Presence.COUNSELLOR_PRESENT,
            joined_at=now,
        )
        try:
            async with write_transaction(self._engine) as conn:
                row = (
                    (
                        await conn.execute(
                            select(*_COLUMNS).where(CounsellorPresence.session_id == session_id)
                        )
                    )
                    .mappings()
                    .one_or_none()
                )
                if row is None:
                    await conn.execute(insert(CounsellorPresence).values(**record.model_dump()))
                    return record
                seen = PresenceRecord.model_validate(dict(row))
                active = seen.now(now) is not Presence.ASSISTANT_ANSWERING
                if active and seen.counsellor_id != counsellor_id:
                    raise AlreadyJoined()
                if seen.counsellor_id == counsellor_id and active:
                    record = record.model_copy(update={"joined_at": seen.joined_at})
                await conn.execute(
                    update(CounsellorPresence)
                    .where(CounsellorPresence.session_id == session_id)
                    .values(**record.model_dump(exclude={"session_id"}))
                )
                return record
        except IntegrityError:
            # Another join won the insert, or the session was deleted meanwhile.
            if await self.get(session_id) is not None:
                raise AlreadyJoined() from None
            raise NotFound() from None

    async def set_state(
        self,
        session_id: str,
        counsellor_id: str,
        state: Presence,
        grace_until: datetime | None = None,
    ) -> bool:
        """Moves the counsellor's presence to `state`; False if they are not in the session."""
        async with write_transaction(self._engine) as conn:
            result = await conn.execute(
                update(CounsellorPresence)
                .where(
                    CounsellorPresence.session_id == session_id,
                    CounsellorPresence.counsellor_id == counsellor_id,
                )
                .values(state=state.value, grace_until=grace_until)
            )
        return bool(result.rowcount)

    async def leave(self, session_id: str, counsellor_id: str) -> bool:
        """The assistant answers again; False if the counsellor was not in the session."""
        async with write_transaction(self._engine) as conn:
            result = await conn.execute(
                delete(CounsellorPresence).where(
                    CounsellorPresence.session_id == session_id,
                    CounsellorPresence.counsellor_id == counsellor_id,
                )
            )
        return bool(result.rowcount)

    async def get(self, session_id: str) -> PresenceRecord | None:
        return next(iter(await self._read(CounsellorPresence.session_id == session_id)), None)

    async def of_user(self, user_id: str) -> list[PresenceRecord]:
        """The person's sessions that have a counsellor row (present or leaving)."""
        return await self._read(CounsellorPresence.user_id == user_id)

    async def of_counsellor(self, counsellor_id: str) -> list[PresenceRecord]:
        return await self._read(CounsellorPresence.counsellor_id == counsellor_id)

    async def joined_by(self, session_ids: Iterable[str]) -> dict[str, str]:
        """Session id -> the display name (else username) of the counsellor in it now."""
        ids = list(session_ids)
        if not ids:
            return {}
        stmt = (
            select(
                CounsellorPresence.session_id,
                CounsellorPresence.state,
                CounsellorPresence.grace_until,
                User.display_name,
                User.username,
            )
            .join(User, User.id == CounsellorPresence.counsellor_id)
            .where(CounsellorPresence.session_id.in_(ids))
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        now = datetime.now(UTC)
        return {
            row.session_id: row.display_name or row.username
            for row in rows
            if current(Presence(row.state), row.grace_until, now)
            is not Presence.ASSISTANT_ANSWERING
        }

    async def _read(self, condition: ColumnElement[bool]) -> list[PresenceRecord]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(*_COLUMNS).where(condition))).mappings().all()
        return [PresenceRecord.model_validate(dict(row)) for row in rows]
