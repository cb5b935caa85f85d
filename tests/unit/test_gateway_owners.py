"""A host drops the links (and sockets) of Gateway replicas that died, and only those."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from actors.connection import SocketTicket
from actors.link import LinkSink
from actors.owners import GatewayOwners, GatewayRef
from haven.settings import Settings
from tests.host_core import host_core

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


class Released:
    """Stands in for the host: each link holds two sockets."""

    def __init__(self) -> None:
        self.links: list[str] = []

    async def __call__(self, link_id: str) -> int:
        self.links.append(link_id)
        return 2


async def test_links_of_a_dead_gateway_are_released_and_live_ones_stay() -> None:
    lookups, released = Lookups(), Released()
    owners = GatewayOwners(lookups, released)
    owners.add(DEAD, "l1")
    owners.add(DEAD, "l2")
    owners.add(LIVE, "l3")

    assert await owners.sweep() == 4
    assert sorted(released.links) == ["l1", "l2"]
    # One lookup per replica, not per link.
    assert sorted(o.actor_id for o in lookups.asked) == sorted([DEAD.actor_id, LIVE.actor_id])
    assert len(owners) == 1

    # Links already released are not released twice.
    assert await owners.sweep() == 0
    assert len(released.links) == 2


async def test_a_failed_lookup_releases_nothing() -> None:
    released = Released()
    owners = GatewayOwners(Lookups(), released)
    owners.add(UNSURE, "l1")
    assert await owners.sweep() == 0
    assert released.links == [] and len(owners) == 1


async def test_a_link_ended_normally_is_no_longer_watched() -> None:
    released = Released()
    owners = GatewayOwners(Lookups(), released)
    owners.add(DEAD, "l1")
    owners.discard("l1")
    assert await owners.sweep() == 0 and released.links == []


async def _until(check: Callable[[], bool]) -> None:
    while not check():  # noqa: ASYNC110 - the sweeps run on their own schedule
        await asyncio.sleep(0.005)


async def test_watch_keeps_sweeping_until_cancelled() -> None:
    released = Released()
    owners = GatewayOwners(Lookups(), released)
    watch = asyncio.get_running_loop().create_task(owners.watch(0.01))
    owners.add(DEAD, "l1")
    await asyncio.wait_for(_until(lambda: len(released.links) == 1), 5)
    owners.add(DEAD, "l2")
    await asyncio.wait_for(_until(lambda: len(released.links) == 2), 5)
    watch.cancel()
    assert released.links == ["l1", "l2"]


async def test_detaching_an_orphan_frees_its_place_and_lets_the_user_go(
    tmp_path: Path, database_url: str
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=database_url, max_connections_per_user=1)
    core, store = await host_core(settings)
    user = await store.create_user("ana", "hash")
    link = LinkSink()
    owners = GatewayOwners(Lookups(), lambda _link_id: core.release(link))

    owners.add(DEAD, "l1")
    assert await core.open_socket(user.id, "s1", SocketTicket(), link.feed("s1")) == []
    link.sockets["s1"] = user.id
    assert core.socket_count == 1 and core.user_count == 1

    assert await owners.sweep() == 1
    assert link.closed and link.sockets == {}
    assert core.socket_count == 0 and core.user_count == 0

    # The place it held is free again.
    assert await core.open_socket(user.id, "s2", SocketTicket(), lambda _: None) == []
    assert core.socket_count == 1
    await core.detach(user.id, "s2")
    await store.close()
