"""Tokens ended by logout before they expire (by `jti`)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from haven.storage.tables import RevokedToken


class Revocations:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def revoke(self, jti: str, user_id: str, expires_at: datetime) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(RevokedToken).values(jti=jti, user_id=user_id, expires_at=expires_at)
                )
        except IntegrityError:
            pass  # already revoked: logging out twice is fine
        await self.prune()

    async def is_revoked(self, jti: str) -> bool:
        stmt = select(RevokedToken.jti).where(RevokedToken.jti == jti)
        async with self._engine.connect() as conn:
            return (await conn.execute(stmt)).first() is not None

    async def prune(self) -> None:
        # An expired token is refused anyway; its revocation need not be kept.
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(RevokedToken).where(RevokedToken.expires_at < datetime.now(UTC))
            )
