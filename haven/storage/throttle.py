"""Throttling counters in the database, so every Gateway replica sees the same numbers.

Each counter is one row, read and written in one write transaction (SQLite: BEGIN IMMEDIATE;
PostgreSQL: the row locked FOR UPDATE), so failures counted at once on two replicas are both
counted. The policy (how many, how long) is the caller's: `haven.throttle`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from haven.storage.database import write_transaction
from haven.storage.tables import ThrottleCounter

# (count after this hit, when the counter started) -> until when it locks, or None.
LockFor = Callable[[int, datetime], datetime | None]


def throttle_key(kind: str, value: str) -> str:
    """The stored key of what is counted: hashed, so no username or address is kept."""
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


@dataclass(frozen=True)
class Counter:
    count: int
    first_at: datetime
    locked_until: datetime | None


class ThrottleCounters:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def locked_until(self, keys: list[str], now: datetime) -> datetime | None:
        """The latest lock still in force on any of `keys`, or None."""
        stmt = select(ThrottleCounter.locked_until).where(
            ThrottleCounter.key.in_(keys), ThrottleCounter.locked_until > now
        )
        async with self._engine.connect() as conn:
            locks = [row[0] for row in await conn.execute(stmt) if row[0] is not None]
        return max(locks, default=None)

    async def count(
        self,
        key: str,
        now: datetime,
        forget_before: datetime,
        lock_for: LockFor,
        *,
        fixed_window: bool = False,
    ) -> Counter:
        """Adds one to `key` and sets its lock to `lock_for(count, first_at)` (None: no lock).
        The count restarts when its last hit (or, for a `fixed_window`, its first) was before
        `forget_before`."""
        for attempt in range(2):
            try:
                async with write_transaction(self._engine) as conn:
                    return await self._count(conn, key, now, forget_before, lock_for, fixed_window)
            except IntegrityError:
                # PostgreSQL: another replica inserted the same new key at the same moment;
                # the row exists now, so the second attempt updates it.
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _count(
        self,
        conn: AsyncConnection,
        key: str,
        now: datetime,
        forget_before: datetime,
        lock_for: LockFor,
        fixed_window: bool,
    ) -> Counter:
        stmt = select(
            # Labelled: a Row is a tuple, whose `count` is tuple.count.
            ThrottleCounter.count.label("hits"),
            ThrottleCounter.first_at,
            ThrottleCounter.last_at,
        ).where(ThrottleCounter.key == key)
        row = (await conn.execute(stmt.with_for_update())).first()
        if row is None or (row.first_at if fixed_window else row.last_at) < forget_before:
            count, first_at = 1, now
        else:
            count, first_at = row.hits + 1, row.first_at
        locked_until = lock_for(count, first_at)
        values = {
            "count": count,
            "first_at": first_at,
            "last_at": now,
            "locked_until": locked_until,
        }
        if row is None:
            await conn.execute(insert(ThrottleCounter).values(key=key, **values))
        else:
            await conn.execute(
                update(ThrottleCounter).where(ThrottleCounter.key == key).values(**values)
            )
        return Counter(count=count, first_at=first_at, locked_until=locked_until)

    async def clear(self, key: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(ThrottleCounter).where(ThrottleCounter.key == key))

    async def prune(self, forget_before: datetime, now: datetime) -> None:
        """Drops counters nobody has hit since `forget_before` and that lock nothing now."""
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(ThrottleCounter).where(
                    ThrottleCounter.last_at < forget_before,
                    or_(
                        ThrottleCounter.locked_until.is_(None), ThrottleCounter.locked_until <= now
                    ),
                )
            )
