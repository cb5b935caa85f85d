"""Throttle counters hit at once from two replicas (two engines on one database) count every
hit: none is lost to a race, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from haven.storage import migrate
from haven.storage.store import Store
from haven.storage.throttle import throttle_key

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _never(_count: int, _first_at: datetime) -> datetime | None:
    return None


async def test_hits_from_two_replicas_at_once_are_all_counted(database_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, database_url)
    replicas = [Store.from_url(database_url) for _ in range(2)]
    key = throttle_key("login-account", "ana")
    try:
        await asyncio.gather(
            *(
                replicas[i % 2].throttle.count(key, NOW, NOW - timedelta(hours=1), _never)
                for i in range(12)
            )
        )
        last = await replicas[0].throttle.count(key, NOW, NOW - timedelta(hours=1), _never)
    finally:
        for store in replicas:
            await store.close()
    assert last.count == 13


async def test_a_lock_set_on_one_replica_is_seen_by_the_other(database_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, database_url)
    first, second = Store.from_url(database_url), Store.from_url(database_url)
    key = throttle_key("login-address", "10.0.0.1")
    until = NOW + timedelta(seconds=30)
    try:
        await first.throttle.count(key, NOW, NOW - timedelta(hours=1), lambda _c, _f: until)
        assert await second.throttle.locked_until([key], NOW) == until
        assert await second.throttle.locked_until([key], until) is None  # over once it passed
        await second.throttle.clear(key)
        assert await first.throttle.locked_until([key], NOW) is None
    finally:
        await first.close()
        await second.close()
