"""One stream per Gateway replica and host: each socket gets its own items, in order, and
nothing of another socket's; a lost link ends every socket on it with an error."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from actors.channel import Close, Outbound, SocketChannel
from actors.connection import SocketTicket
from actors.host import ConnectionHostCore
from actors.link import LinkDemux, LinkLost, LinkSink
from haven.errors import CloseCode
from haven.protocol import Ping
from haven.settings import Settings
from haven.storage import migrate
from haven.storage.store import Store
from tests.fakes import FakeAssessor, FakeGenerator


def no_screen(text: str, *, at_risk: bool = False) -> str | None:
    return None


def test_a_forwarded_channel_hands_over_what_it_queued_then_each_item_at_once() -> None:
    channel = SocketChannel()
    channel.put("a")
    got: list[Outbound | None] = []
    channel.forward_to(got.append)
    assert got == ["a"]
    channel.put("b")
    channel.put(Close(CloseCode.NORMAL))
    channel.put("never written: after the close order")
    channel.close()
    channel.close()
    assert got == ["a", "b", Close(CloseCode.NORMAL), None]


async def test_the_sink_gathers_each_sockets_items_in_order_and_marks_their_end() -> None:
    sink = LinkSink()
    sink.sockets.update({"s1": "ana", "s2": "bo"})
    one, two = sink.feed("s1"), sink.feed("s2")
    one("a1")
    two("b1")
    one("a2")
    two(None)
    two("ignored: s2 has ended")
    assert await sink.next() == [("s1", ["a1", "a2"], False), ("s2", ["b1"], True)]
    assert sink.sockets == {"s1": "ana"}

    waiting = asyncio.ensure_future(sink.next())
    await asyncio.sleep(0)
    assert not waiting.done()
    one("a3")
    assert await waiting == [("s1", ["a3"], False)]

    one("a4")
    sink.close()
    one("dropped: the link is closed")
    assert await sink.next() == [("s1", ["a4"], False)]
    assert await sink.next() is None


async def _collect(demux: LinkDemux, socket_id: str) -> list[list[Outbound]]:
    return [batch async for batch in demux.items(socket_id)]


async def test_the_demux_gives_each_socket_its_own_part_and_nothing_of_others() -> None:
    demux = LinkDemux()
    demux.register("s1")
    demux.register("s2")
    demux.dispatch([("s1", ["a1"], False), ("s2", ["b1", "b2"], True), ("gone", ["x"], True)])
    demux.dispatch([("s1", ["a2"], True)])
    assert await _collect(demux, "s1") == [["a1"], ["a2"]]
    assert await _collect(demux, "s2") == [["b1", "b2"]]
    demux.unregister("s1")
    demux.unregister("s2")
    assert len(demux) == 0


async def test_a_lost_link_ends_every_socket_with_its_error_after_what_it_had() -> None:
    demux = LinkDemux()
    demux.register("s1")
    demux.dispatch([("s1", ["a1"], False)])
    demux.lose(LinkLost("host gone"))
    items = demux.items("s1")
    assert await anext(items) == ["a1"]
    with pytest.raises(LinkLost):
        await anext(items)
    # A socket registered on a lost link fails at once rather than waiting forever.
    demux.register("late")
    with pytest.raises(LinkLost):
        await _collect(demux, "late")


async def test_sockets_opened_on_a_link_share_it_and_its_end_detaches_them(
    tmp_path: Path, database_url: str
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    await asyncio.to_thread(migrate.upgrade, settings.resolved_database_url)
    store = Store.from_url(settings.resolved_database_url)
    ana = (await store.create_user("ana", "hash")).id
    bo = (await store.create_user("bo", "hash")).id
    core = ConnectionHostCore(settings, store, FakeAssessor(), FakeGenerator(), no_screen)
    link = LinkSink()
    try:
        assert await core.open(ana, "a", SocketTicket(), link) == []
        assert await core.open(bo, "b", SocketTicket(), link) == []
        assert core.socket_count == 2 and link.sockets == {"a": ana, "b": bo}

        await core.receive_many([(ana, "a", Ping(type="ping")), (bo, "b", Ping(type="ping"))])
        envelopes = await asyncio.wait_for(link.next(), 5)
        by_socket = {socket_id: items for socket_id, items, _ in envelopes}
        assert set(by_socket) == {"a", "b"}
        assert all('"pong"' in str(item) for items in by_socket.values() for item in items)

        # A normal close ends only that socket's stream.
        await core.detach(ana, "a")
        assert await asyncio.wait_for(link.next(), 5) == [("a", [], True)]
        assert link.sockets == {"b": bo}

        # The replica stopped reading: the rest are detached, and their users let go.
        assert await core.release(link) == 1
        assert core.socket_count == 0 and core.user_count == 0
        assert await link.next() is None
    finally:
        await store.close()


async def test_a_refused_socket_gets_its_close_order_and_never_joins_the_link(
    tmp_path: Path, database_url: str
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=database_url, max_connections_per_user=1)
    await asyncio.to_thread(migrate.upgrade, settings.resolved_database_url)
    store = Store.from_url(settings.resolved_database_url)
    ana = (await store.create_user("ana", "hash")).id
    core = ConnectionHostCore(settings, store, FakeAssessor(), FakeGenerator(), no_screen)
    link = LinkSink()
    try:
        assert await core.open(ana, "a", SocketTicket(), link) == []
        refused = await core.open(ana, "b", SocketTicket(), link)
        assert len(refused) == 1 and isinstance(refused[0], Close)
        assert refused[0].code == CloseCode.TOO_MANY_CONNECTIONS
        assert link.sockets == {"a": ana}
        await core.release(link)
    finally:
        await store.close()
