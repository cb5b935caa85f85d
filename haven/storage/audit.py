"""The escalation audit trail, and the aggregate report an operator files from it.

A record says who, where, when, how severe, by which model and what Haven did; never what the
person wrote.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from haven.storage.tables import Escalation

Period = Literal["day", "week", "month"]


class EscalationRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    # None once the person erased their account (`haven.storage.erasure`).
    user_id: str | None
    session_id: str | None
    message_id: str | None
    risk_level: str
    scores: dict[str, float]
    model_id: str
    model_version: str
    raised_by: str | None
    action: str
    created_at: datetime


class AuditLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record_escalation(
        self,
        *,
        user_id: str,
        session_id: str,
        message_id: str,
        risk_level: str,
        scores: dict[str, float],
        model_id: str,
        model_version: str,
        raised_by: str | None,
        action: str,
    ) -> EscalationRecord:
        record = EscalationRecord(
            id=str(uuid.uuid4()),
            user_id=user_id,
            session_id=session_id,
            message_id=message_id,
            risk_level=risk_level,
            scores=scores,
            model_id=model_id,
            model_version=model_version,
            raised_by=raised_by,
            action=action,
            created_at=datetime.now(UTC),
        )
        values = record.model_dump() | {"scores": json.dumps(scores, sort_keys=True)}
        async with self._engine.begin() as conn:
            await conn.execute(insert(Escalation).values(**values))
        return record

    async def escalations(self, user_id: str | None = None) -> list[EscalationRecord]:
        stmt = select(Escalation).order_by(Escalation.created_at)
        if user_id is not None:
            stmt = stmt.where(Escalation.user_id == user_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [
            EscalationRecord.model_validate(dict(row) | {"scores": json.loads(row["scores"])})
            for row in rows
        ]

    async def report(
        self, *, since: datetime, until: datetime, period: Period
    ) -> list[dict[str, str | int]]:
        """Escalation counts per period, level and action: no ids, no text."""
        stmt = select(Escalation.created_at, Escalation.risk_level, Escalation.action).where(
            Escalation.created_at >= since, Escalation.created_at < until
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        counts: Counter[tuple[str, str, str]] = Counter(
            (_period_start(_aware(r.created_at), period), r.risk_level, r.action) for r in rows
        )
        return [
            {"period": p, "risk_level": level, "action": action, "count": n}
            for (p, level, action), n in sorted(counts.items())
        ]


def period_windows(
    since: datetime, until: datetime, period: Period
) -> list[tuple[str, datetime, datetime]]:
    """Every period that overlaps [since, until): its label (as `report` writes it), start and
    end in UTC. The first and last may reach beyond the window."""
    start = _floor(_aware(since), period)
    windows: list[tuple[str, datetime, datetime]] = []
    while start < until:
        end = _next(start, period)
        windows.append((_period_start(start, period), start, end))
        start = end
    return windows


def _floor(moment: datetime, period: Period) -> datetime:
    day = moment.astimezone(UTC).date()
    if period == "week":
        day -= timedelta(days=day.weekday())  # ISO weeks start on Monday
    elif period == "month":
        day = day.replace(day=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _next(start: datetime, period: Period) -> datetime:
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(weeks=1)
    year, month = divmod(start.month, 12)  # month is 1-based: December -> (1, 0)
    return start.replace(year=start.year + year, month=month + 1)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _period_start(moment: datetime, period: Period) -> str:
    day = moment.astimezone(UTC).date()
    if period == "day":
        return day.isoformat()
    if period == "week":
        iso = day.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    return f"{day.year}-{day.month:02d}"
