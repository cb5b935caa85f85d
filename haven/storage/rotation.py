"""Master key rotation: every user's data key re-wrapped under the current master key.

Only the small `user_keys` rows change; no message is re-encrypted. A batch at a time, each its
own transaction, and a row only while it is still wrapped under the key it was read with, so an
interrupted rotation keeps its progress, running it again finishes it, and the service (given
both keys meanwhile: `HAVEN_MASTER_KEY` new, `HAVEN_MASTER_KEY_PREVIOUS` old) reads and writes
throughout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from haven.errors import StoredDataUnreadable
from haven.storage.master_key import MasterKeys
from haven.storage.tables import UserKey

logger = logging.getLogger(__name__)

BATCH_SIZE = 200


@dataclass
class RotationReport:
    current_key_id: str
    rewrapped: int = 0
    # Users whose data key no configured master key opens: left as they were.
    unreadable: list[str] = field(default_factory=list)
    remaining: int = 0  # rows still under another key after the run


async def rotate(engine: AsyncEngine, master: MasterKeys) -> RotationReport:
    report = RotationReport(master.current.id)
    after = ""
    while True:
        batch = await _next_batch(engine, master, after)
        if not batch:
            break
        after = batch[-1][0]
        report.rewrapped += await _rewrap(engine, master, batch, report)
    async with engine.connect() as conn:
        stmt = select(func.count()).where(UserKey.master_key_id != master.current.id)
        report.remaining = int((await conn.execute(stmt)).scalar_one())
    logger.info(
        "re-wrapped %d data keys under master key %s; %d not openable; %d under other keys",
        report.rewrapped,
        report.current_key_id,
        len(report.unreadable),
        report.remaining,
    )
    return report


async def _next_batch(
    engine: AsyncEngine, master: MasterKeys, after: str
) -> list[tuple[str, str, bytes]]:
    stmt = (
        select(UserKey.user_id, UserKey.master_key_id, UserKey.wrapped_key)
        .where(UserKey.master_key_id != master.current.id, UserKey.user_id > after)
        .order_by(UserKey.user_id)
        .limit(BATCH_SIZE)
    )
    async with engine.connect() as conn:
        return [(r.user_id, r.master_key_id, r.wrapped_key) for r in (await conn.execute(stmt))]


async def _rewrap(
    engine: AsyncEngine,
    master: MasterKeys,
    batch: list[tuple[str, str, bytes]],
    report: RotationReport,
) -> int:
    changes = []
    for user_id, old_id, wrapped in batch:
        try:
            data_key = master.unwrap(user_id, old_id, wrapped)
        except StoredDataUnreadable:
            report.unreadable.append(user_id)
            continue
        new_id, rewrapped = master.wrap(user_id, data_key)
        changes.append((user_id, old_id, new_id, rewrapped))
    done = 0
    async with engine.begin() as conn:
        for user_id, old_id, new_id, rewrapped in changes:
            result = await conn.execute(
                update(UserKey)
                .where(UserKey.user_id == user_id, UserKey.master_key_id == old_id)
                .values(master_key_id=new_id, wrapped_key=rewrapped)
            )
            done += result.rowcount
    return done
