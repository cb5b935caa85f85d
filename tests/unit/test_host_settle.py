"""A host's background work (started for sockets that may already be closed) is waited for at
shutdown, so the store is not closed under it; work that never ends does not hold shutdown up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from haven.errors import HavenError
from haven.protocol import ErrorEvent
from haven.settings import Settings
from tests.host_core import host_core


async def test_settle_waits_for_store_writes_and_the_work_they_start(
    tmp_path: Path, database_url: str
) -> None:
    core, store = await host_core(Settings(data_dir=tmp_path, database_url=database_url))
    written: list[str] = []

    async def write(name: str) -> None:
        await asyncio.sleep(0.05)
        written.append((await store.create_user(name, "hash")).id)

    async def write_then_start_another() -> None:
        await write("ana")
        core.spawn(write("bo"), "a second write")

    try:
        core.spawn(write_then_start_another(), "a write")
        await core.settle()
        assert len(written) == 2
    finally:
        await store.close()


async def test_settle_gives_up_on_work_that_does_not_end(tmp_path: Path, database_url: str) -> None:
    core, store = await host_core(Settings(data_dir=tmp_path, database_url=database_url))
    never = core.spawn(asyncio.Event().wait(), "waiting forever")
    try:
        await asyncio.wait_for(core.settle(wait_s=0.05), 5)
        assert not never.done()
    finally:
        never.cancel()
        await asyncio.gather(never, return_exceptions=True)
        await store.close()


async def test_settle_waits_for_an_actors_turn_and_its_replay_log_writes(
    tmp_path: Path, database_url: str
) -> None:
    core, store = await host_core(Settings(data_dir=tmp_path, database_url=database_url))
    user = await store.create_user("ana", "hash")
    actor = await core.actor(user.id)
    written: list[str] = []

    async def turn() -> None:
        # A turn still writing for a socket that has closed.
        await asyncio.sleep(0.05)
        written.append((await store.create_user("bo", "hash")).id)

    worker = asyncio.get_running_loop().create_task(turn())
    # An event logged for resume: its write to the store starts in the background.
    actor.replay.number(ErrorEvent.from_error(HavenError()), log=True, session_id=None)
    flushes = actor.replay.writes()
    assert flushes, "logging an event starts a write"
    actor._worker = worker
    try:
        await core.settle()
        assert written and worker.done()
        assert all(task.done() for task in flushes)
        assert actor.replay.writes() == []
    finally:
        actor._worker = None
        await store.close()
