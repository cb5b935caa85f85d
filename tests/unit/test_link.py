"""One stream per Gateway replica and host: each socket gets its own items, in order, and
nothing of another socket's; a lost link ends every socket on it with an error."""

from __future__ import annotations

import asyncio
from pathlib import Path

from actors.channel import Close, Outbound, SocketChannel
from actors.connection import SocketTicket
from actors.link import Delivery, LinkDemux, LinkLost, LinkSink
from haven.errors import CloseCode
from haven.protocol import Ping
from haven.settings import Settings
from tests.host_core import host_core


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


class Handed:
    """A socket's owner: what the link handed it, in order."""

    def __init__(self) -> None:
        self.parts: list[Delivery] = []

    def __call__(self, part: Delivery) -> None:
        self.parts.append(part)


def test_the_demux_gives_each_socket_its_own_part_and_nothing_of_others() -> None:
    demux = LinkDemux()
    one, two = Handed(), Handed()
    demux.register("s1", one)
    demux.register("s2", two)
    demux.dispatch([("s1", ["a1"], False), ("s2", ["b1", "b2"], True), ("gone", ["x"], True)])
    demux.dispatch([("s1", ["a2"], True), ("s2", ["late: s2 has ended"], False)])
    assert one.parts == [["a1"], ["a2"], None]
    assert two.parts == [["b1", "b2"], None]
    assert len(demux) == 0


def test_a_socket_that_fails_to_take_its_items_does_not_break_the_others() -> None:
    demux = LinkDemux()

    def broken(part: Delivery) -> None:
        raise RuntimeError("this socket's outbox is broken")

    fine = Handed()
    demux.register("broken", broken)
    demux.register("fine", fine)
    demux.dispatch([("broken", ["x"], False), ("fine", ["a"], False)])
    demux.dispatch([("broken", ["y"], False), ("fine", ["b"], True)])
    assert fine.parts == [["a"], ["b"], None]
    assert len(demux) == 0


def test_a_lost_link_ends_every_socket_with_its_error_after_what_it_had() -> None:
    demux = LinkDemux()
    one = Handed()
    demux.register("s1", one)
    demux.dispatch([("s1", ["a1"], False)])
    lost = LinkLost("host gone")
    demux.lose(lost)
    assert one.parts == [["a1"], lost]
    # A socket registered on a lost link hears so at once rather than waiting forever.
    late = Handed()
    demux.register("late", late)
    assert late.parts == [lost] and len(demux) == 0


async def test_sockets_opened_on_a_link_share_it_and_its_end_detaches_them(
    tmp_path: Path, database_url: str
) -> None:
    core, store = await host_core(Settings(data_dir=tmp_path, database_url=database_url))
    ana = (await store.create_user("ana", "hash")).id
    bo = (await store.create_user("bo", "hash")).id
    link = LinkSink()
    try:
        for user_id, socket_id in ((ana, "a"), (bo, "b")):
            opened = await core.open_socket(
                user_id, socket_id, SocketTicket(), link.feed(socket_id)
            )
            assert opened == []
            link.sockets[socket_id] = user_id
        assert core.socket_count == 2

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


async def test_a_refused_socket_gets_its_close_order_and_nothing_on_the_link(
    tmp_path: Path, database_url: str
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=database_url, max_connections_per_user=1)
    core, store = await host_core(settings)
    ana = (await store.create_user("ana", "hash")).id
    link = LinkSink()
    try:
        assert await core.open_socket(ana, "a", SocketTicket(), link.feed("a")) == []
        refused = await core.open_socket(ana, "b", SocketTicket(), link.feed("b"))
        assert len(refused) == 1 and isinstance(refused[0], Close)
        assert refused[0].code == CloseCode.TOO_MANY_CONNECTIONS
        # Nothing of the refused socket ever reaches the link.
        link.close()
        assert await link.next() is None
    finally:
        await store.close()
