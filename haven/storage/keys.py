"""Each user's data key: created on the user's first sealed write, kept wrapped by the master
key in `user_keys`, and unwrapped once per process into a bounded cache.

Erasing a user deletes the row; from then on nothing sealed for that user can be opened,
wherever a copy of it went. The process that erases forgets its cached key at once; any other
process (another Gateway replica, a connection host) holds its copy at most `CACHE_TTL_S`, after
which it reads the row again and finds none. Every write for an erased user fails on its
foreign key anyway.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from haven.storage.crypto import Sealer, unreadable
from haven.storage.master_key import MasterKeys
from haven.storage.tables import UserKey

CACHE_SIZE = 4096
# How long an unwrapped key is trusted without asking the table: the bound on how long a copy
# of an erased user's key outlives the erasure in processes that did not erase. One indexed
# read per active user per period.
CACHE_TTL_S = 300.0


class UserKeys:
    def __init__(
        self,
        engine: AsyncEngine,
        master: MasterKeys,
        cache_size: int = CACHE_SIZE,
        ttl_s: float = CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._engine = engine
        self._master = master
        # user id -> (key, when it was read from the table)
        self._cache: OrderedDict[str, tuple[Sealer, float]] = OrderedDict()
        self._cache_size = cache_size
        self._ttl_s = ttl_s
        self._clock = clock

    @property
    def master(self) -> MasterKeys:
        return self._master

    async def for_writing(self, user_id: str) -> Sealer:
        """The user's key, created if the user has none yet; LookupError for an unknown user."""
        cached = self._cached(user_id)
        if cached is not None:
            return cached
        sealer = await self._load(user_id)
        if sealer is None:
            sealer = await self._create(user_id)
        return self._remember(user_id, sealer)

    async def for_reading(self, user_id: str, what: str) -> Sealer:
        """The user's key; StoredDataUnreadable (reported) when there is sealed data to open
        but no key: it was destroyed, or the row was tampered with."""
        cached = self._cached(user_id)
        if cached is not None:
            return cached
        sealer = await self._load(user_id)
        if sealer is None:
            raise unreadable(what, "no data key for its user")
        return self._remember(user_id, sealer)

    def forget(self, user_id: str) -> None:
        self._cache.pop(user_id, None)

    def _cached(self, user_id: str) -> Sealer | None:
        entry = self._cache.get(user_id)
        if entry is None:
            return None
        sealer, read_at = entry
        if self._clock() - read_at >= self._ttl_s:
            del self._cache[user_id]
            return None
        self._cache.move_to_end(user_id)
        return sealer

    def _remember(self, user_id: str, sealer: Sealer) -> Sealer:
        self._cache[user_id] = (sealer, self._clock())
        self._cache.move_to_end(user_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return sealer

    async def _load(self, user_id: str) -> Sealer | None:
        stmt = select(UserKey.master_key_id, UserKey.wrapped_key).where(UserKey.user_id == user_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).one_or_none()
        if row is None:
            return None
        return Sealer(self._master.unwrap(user_id, row.master_key_id, row.wrapped_key))

    async def _create(self, user_id: str) -> Sealer:
        data_key, master_id, wrapped = self._master.new_wrapped_key(user_id)
        values = {
            "user_id": user_id,
            "master_key_id": master_id,
            "wrapped_key": wrapped,
            "created_at": datetime.now(UTC),
        }
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(UserKey).values(**values))
        except IntegrityError:
            # Another process created it first, or the user does not exist (any more).
            existing = await self._load(user_id)
            if existing is None:
                raise LookupError("unknown user") from None
            return existing
        return Sealer(data_key)
