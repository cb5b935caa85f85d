"""A copy of everything Haven holds about one person (GDPR Art. 15), as one JSON document
(schema: docs/export.schema.json), written piece by piece so a long history never sits in
memory whole: sessions one at a time, messages a page at a time.

The account without its password hash; every session with its messages in order (role, text,
time, intent, risk level, status); the escalations about them (level, time, action).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from haven.storage.keys import UserKeys
from haven.storage.sealed import message_identity
from haven.storage.tables import ChatSession, Escalation, Message, User

FORMAT = "haven-export/1"
PAGE = 200


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class Exporter:
    def __init__(self, engine: AsyncEngine, keys: UserKeys) -> None:
        self._engine = engine
        self._keys = keys

    async def account_exists(self, user_id: str) -> bool:
        async with self._engine.connect() as conn:
            found = await conn.execute(select(User.id).where(User.id == user_id))
            return found.first() is not None

    async def export(self, user_id: str) -> AsyncIterator[str]:
        """The document, in pieces; nothing at all for an unknown account (check first with
        `account_exists`: a stream cannot fail cleanly once it started)."""
        account = await self._account(user_id)
        if account is None:
            return
        yield f'{{"format": {_json(FORMAT)}, "exported_at": {_json(_iso(datetime.now(UTC)))}'
        yield f', "account": {_json(account)}, "sessions": ['
        sessions = await self._sessions(user_id)
        for n, (session_id, created_at) in enumerate(sessions):
            head = {"id": session_id, "created_at": _iso(created_at)}
            yield ("" if n == 0 else ", ") + _json(head)[:-1] + ', "messages": ['
            first = True
            async for message in self._messages(user_id, session_id):
                yield ("" if first else ", ") + _json(message)
                first = False
            yield "]}"
        yield f'], "escalations": {_json(await self._escalations(user_id))}}}\n'

    async def _account(self, user_id: str) -> dict[str, Any] | None:
        stmt = select(
            User.id, User.username, User.created_at, User.locale, User.role, User.display_name
        ).where(User.id == user_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).mappings().one_or_none()
        if row is None:
            return None
        return dict(row) | {"created_at": _iso(row["created_at"])}

    async def _sessions(self, user_id: str) -> list[tuple[str, datetime]]:
        stmt = (
            select(ChatSession.id, ChatSession.created_at)
            .where(ChatSession.user_id == user_id)
            .order_by(ChatSession.created_at, ChatSession.id)
        )
        async with self._engine.connect() as conn:
            return [(r.id, r.created_at) for r in (await conn.execute(stmt)).all()]

    async def _messages(self, user_id: str, session_id: str) -> AsyncIterator[dict[str, Any]]:
        after = 0
        while True:
            stmt = (
                select(
                    Message.id,
                    Message.seq,
                    Message.role,
                    Message.text_sealed,
                    Message.intent,
                    Message.risk_level,
                    Message.status,
                    Message.created_at,
                )
                .where(
                    Message.session_id == session_id,
                    Message.user_id == user_id,
                    Message.seq > after,
                )
                .order_by(Message.seq)
                .limit(PAGE)
            )
            async with self._engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
            for r in rows:
                what = f"messages[{r.id}]"
                sealer = await self._keys.for_reading(user_id, what)
                identity = message_identity(r.id, user_id, session_id, r.role)
                yield {
                    "id": r.id,
                    "role": r.role,
                    "text": sealer.open_(r.text_sealed, identity, what=what),
                    "created_at": _iso(r.created_at),
                    "intent": r.intent,
                    "risk_level": r.risk_level,
                    "status": r.status,
                }
            if len(rows) < PAGE:
                return
            after = rows[-1].seq

    async def _escalations(self, user_id: str) -> list[dict[str, Any]]:
        stmt = (
            select(
                Escalation.session_id,
                Escalation.message_id,
                Escalation.risk_level,
                Escalation.action,
                Escalation.created_at,
            )
            .where(Escalation.user_id == user_id)
            .order_by(Escalation.created_at, Escalation.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [dict(r) | {"created_at": _iso(r["created_at"])} for r in rows]
