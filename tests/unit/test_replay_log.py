"""The write-behind of the resume log: every logged event reaches storage before `drain` returns,
however the writes interleave with new events."""

from __future__ import annotations

import asyncio
from datetime import datetime

from actors.replay import ReplayLog
from haven.protocol import Pong
from haven.storage.events import LoggedEvent, RecentEvents


class SlowEventLog:
    """Records appends; `prune` waits until released, as a round trip to a server does."""

    def __init__(self) -> None:
        self.appended: list[int] = []
        self.pruning = asyncio.Event()
        self.release_prune = asyncio.Event()

    async def reserve(self, user_id: str, block: int) -> tuple[int, int]:
        return 1, 1 + block

    async def floor(self, user_id: str) -> int:
        return 0

    async def recent(self, user_id: str, *, newer_than: datetime, limit: int) -> RecentEvents:
        return RecentEvents([])

    async def append(self, user_id: str, events: list[LoggedEvent]) -> None:
        await asyncio.sleep(0)
        self.appended += [e.seq for e in events]

    async def prune(self, user_id: str, *, older_than: datetime) -> None:
        self.pruning.set()
        await self.release_prune.wait()


async def test_event_logged_while_old_events_are_pruned_is_still_written() -> None:
    events = SlowEventLog()
    log = ReplayLog("u", events, window_s=120, max_events=100)  # type: ignore[arg-type]
    await log.load()
    log.number(Pong(), log=True, session_id=None)
    await events.pruning.wait()  # the first flush wrote seq 1 and now prunes
    log.number(Pong(), log=True, session_id=None)  # seq 2 arrives meanwhile
    events.release_prune.set()
    await asyncio.wait_for(log.drain(), 5)
    assert events.appended == [1, 2]


class FlakyEventLog(SlowEventLog):
    """The first `failures` appends fail, as a locked or unreachable database does."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.release_prune.set()
        self.failures = failures

    async def append(self, user_id: str, events: list[LoggedEvent]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("database is locked")
        await super().append(user_id, events)


async def test_events_of_a_failed_write_are_written_by_the_next_one_in_order() -> None:
    events = FlakyEventLog(failures=1)
    log = ReplayLog("u", events, window_s=120, max_events=100)  # type: ignore[arg-type]
    await log.load()
    log.number(Pong(), log=True, session_id=None)
    await asyncio.sleep(0.01)  # that write fails
    log.number(Pong(), log=True, session_id=None)
    await asyncio.wait_for(log.drain(), 5)
    assert events.appended == [1, 2]


async def test_drain_gives_up_after_its_attempts_when_storage_stays_down() -> None:
    events = FlakyEventLog(failures=100)
    log = ReplayLog("u", events, window_s=120, max_events=100)  # type: ignore[arg-type]
    await log.load()
    log.number(Pong(), log=True, session_id=None)
    await asyncio.wait_for(log.drain(attempts=2), 5)
    assert events.appended == [] and events.failures == 100 - 3
