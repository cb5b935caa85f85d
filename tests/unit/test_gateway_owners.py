"""A host drops the sockets of Gateway replicas that died, and only those."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from actors.connection import SocketTicket
from actors.host import ConnectionHostCore
from actors.owners import GatewayOwners, GatewayRef
from haven.settings import Settings
from haven.storage import migrate
from haven.storage.store import Store
from tests.fakes import FakeAssessor, FakeGenerator

LIVE = GatewayRef("live-replica", handle=None)
DEAD = GatewayRef("dead-replica", handle=None)
UNSURE = GatewayRef("unreachable-replica", handle=None)


class Lookups:
    """DEAD is known dead, LIVE answers, UNSURE cannot be reached."""

    def __init__(self) -> None:
        self.asked: list[GatewayRef] = []

    async def __call__(self, owner: GatewayRef) -> bool:
        self.asked.append(owner)
        if owner == UNSURE:
            raise TimeoutError("the replica did not answer")
        return owner == DEAD


def no_screen(text: str, *, at_risk: bool = False) -> str | None:
    return None


class Detached:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, user_id: str, socket_id: str) -> None:
        self.calls.append((user_id, socket_id))


async def test_sockets_of_a_dead_gateway_are_detached_and_live_ones_stay() -> None:
    lookups, detached = Lookups(), Detached()
    owners = GatewayOwners(lookups, detached)
    owners.add(DEAD, "ana", "s1")
    owners.add(DEAD, "bo", "s2")
    owners.add(LIVE, "ana", "s3")

    assert await owners.sweep() == 2
    assert sorted(detached.calls) == [("ana", "s1"), ("bo", "s2")]
    # One lookup per replica, not per socket.
    assert sorted(o.actor_id for o in lookups.asked) == sorted([DEAD.actor_id, LIVE.actor_id])
    assert len(owners) == 1

    # Already detached sockets are not detached twice.
    assert await owners.sweep() == 0
    assert len(detached.calls) == 2


async def test_a_failed_lookup_detaches_nothing() -> None:
    detached = Detached()
    owners = GatewayOwners(Lookups(), detached)
    owners.add(UNSURE, "ana", "s1")
    assert await owners.sweep() == 0
    assert detached.calls == [] and len(owners) == 1


async def test_a_socket_closed_normally_is_no_longer_watched() -> None:
    detached = Detached()
    owners = GatewayOwners(Lookups(), detached)
    owners.add(DEAD, "ana", "s1")
    owners.discard("ana", "s1")
    assert await owners.sweep() == 0 and detached.calls == []


async def _until(check: Callable[[], bool]) -> None:
    while not check():  # noqa: ASYNC110 - the sweeps run on their own schedule
        await asyncio.sleep(0.005)


async def test_watch_keeps_sweeping_until_cancelled() -> None:
    detached = Detached()
    owners = GatewayOwners(Lookups(), detached)
    watch = asyncio.get_running_loop().create_task(owners.watch(0.01))
    owners.add(DEAD, "ana", "s1")
    await asyncio.wait_for(_until(lambda: len(detached.calls) == 1), 5)
    owners.add(DEAD, "ana", "s2")
    await asyncio.wait_for(_until(lambda: len(detached.calls) == 2), 5)
    watch.cancel()
    assert detached.calls == [("ana", "s1"), ("ana", "s2")]


async def test_detaching_an_orphan_frees_its_place_and_lets_the_user_go(
    tmp_path: Path, database_url: str
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=database_url, max_connections_per_user=1)
    await asyncio.to_thread(migrate.upgrade, settings.resolved_database_url)
    store = Store.from_url(settings.resolved_database_url)
    user = await store.create_user("ana", "hash")
    core = ConnectionHostCore(settings, store, FakeAssessor(), FakeGenerator(), no_screen)
    owners = GatewayOwners(Lookups(), core.detach)

    orphan = core.attach(user.id, "s1", SocketTicket())
    owners.add(DEAD, user.id, "s1")
    assert await anext(orphan) == []
    assert core.socket_count == 1 and core.user_count == 1

    assert await owners.sweep() == 1
    assert [batch async for batch in orphan] == []
    assert core.socket_count == 0 and core.user_count == 0

    # The place it held is free again.
    fresh = core.attach(user.id, "s2", SocketTicket())
    assert await anext(fresh) == []
    assert core.socket_count == 1
    await core.detach(user.id, "s2")
    await store.close()
