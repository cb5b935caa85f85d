"""The per-user ConnectionActor's parts and its host, without Ray."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from actors.channel import Close, Outbound, SocketChannel
from actors.connection import SocketTicket
from actors.desk import PersonCall
from actors.host import ConnectionHostCore
from actors.limits import SlidingWindow, TokenBucket
from actors.pool import host_index
from deployments.outbox import Outbox, OutboxState
from haven.protocol import Ping
from haven.risk import RiskLevel
from haven.safety_policy import escalates, policy_intent, uses_fixed_reply
from haven.settings import Settings
from haven.storage import migrate
from haven.storage.store import Store
from tests.fakes import FakeAssessor, FakeGenerator


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_channel_drains_in_order_in_batches_then_ends() -> None:
    channel = SocketChannel()
    for n in range(5):
        channel.put(str(n))
    channel.close()
    channel.put("after close")
    assert await channel.next_batch(max_items=3) == ["0", "1", "2"]
    assert await channel.next_batch() == ["3", "4"]
    assert await channel.next_batch() is None


async def test_channel_takes_nothing_after_a_close_order() -> None:
    channel = SocketChannel()
    channel.put("a")
    channel.put(Close(4004, "bye"))
    channel.put("never sent")
    channel.close()
    assert await channel.next_batch() == ["a", Close(4004, "bye")]


def test_token_bucket_allows_a_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(burst=2, rate=0.5, clock=clock)
    assert bucket.take() == 0.0 and bucket.take() == 0.0
    assert bucket.take() == pytest.approx(2.0)
    clock.now += 1.0
    assert bucket.take() == pytest.approx(1.0)
    clock.now += 1.0
    assert bucket.take() == 0.0


def test_sliding_window_counts_events_within_the_window() -> None:
    clock = Clock()
    window = SlidingWindow(limit=2, window_s=60, clock=clock)
    assert window.hit() == 0.0
    clock.now += 10
    assert window.hit() == 0.0
    assert window.hit() == pytest.approx(50.0)
    clock.now += 50
    assert window.hit() == 0.0 and window.active


async def test_outbox_over_its_byte_bound_orders_a_slow_consumer_close() -> None:
    written: list[Outbound] = []

    async def write(item: Outbound) -> None:
        written.append(item)

    outbox = Outbox(max_bytes=100, write=write)
    outbox.put("x" * 60)
    outbox.put("y" * 60)
    outbox.put("z")
    assert outbox.queued_bytes == 0 and outbox.state is OutboxState.CLOSING
    outbox.start()
    assert await outbox.wait_finished(5)
    (item,) = written
    assert isinstance(item, Close) and item.code == 4009
    assert item.frame is not None and '"code":"slow_consumer"' in item.frame
    assert outbox.state is OutboxState.FINISHED


async def test_outbox_writes_nothing_before_it_starts_then_everything_in_order() -> None:
    written: list[Outbound] = []
    finished: list[bool] = []

    async def write(item: Outbound) -> None:
        await asyncio.sleep(0)
        written.append(item)

    outbox = Outbox(max_bytes=1000, write=write)
    outbox.put("a")
    await asyncio.sleep(0.01)
    assert written == []
    outbox.start(on_finished=lambda: finished.append(True))
    outbox.put("b")
    outbox.end(1012)
    outbox.put("dropped: after the close order")
    assert await outbox.wait_finished(5)
    assert written == ["a", "b", Close(1012)] and finished == [True]


async def test_outbox_stops_writing_when_the_client_is_gone() -> None:
    attempts: list[Outbound] = []

    async def write(item: Outbound) -> None:
        attempts.append(item)
        raise OSError("the peer closed the connection")

    outbox = Outbox(max_bytes=1000, write=write)
    outbox.start()
    outbox.put("a")
    outbox.put("b")
    assert await outbox.wait_finished(5)
    outbox.put("c")
    await asyncio.sleep(0.01)
    assert attempts == ["a"] and outbox.queued_bytes == 0


def test_host_index_is_stable_and_spreads_users() -> None:
    assert host_index("user-1", 4) == host_index("user-1", 4)
    used = {host_index(f"user-{n}", 4) for n in range(200)}
    assert used == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("level", "escalate", "intent", "fixed"),
    [
        (RiskLevel.NONE, False, None, False),
        (RiskLevel.LOW, False, None, False),
        (RiskLevel.MEDIUM, False, None, True),
        (RiskLevel.HIGH, True, "safety_check_in", True),
        (RiskLevel.CRITICAL, True, "crisis_support", True),
    ],
)
def test_policy_per_level(
    level: RiskLevel, escalate: bool, intent: str | None, fixed: bool
) -> None:
    assert escalates(level) is escalate
    assert policy_intent(level) == intent
    assert uses_fixed_reply(level) is fixed
    # Only critical stays reviewed when the operator trusts the model at high risk; trust at
    # medium leaves high and critical reviewed.
    assert uses_fixed_reply(level, generated_at_high=True) is (level is RiskLevel.CRITICAL)
    assert uses_fixed_reply(level, generated_at_medium=True) is level.at_least(RiskLevel.HIGH)


async def _core(tmp_path: Path, database_url: str) -> tuple[ConnectionHostCore, Store, str]:
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    await asyncio.to_thread(migrate.upgrade, settings.resolved_database_url)
    store = Store.from_url(settings.resolved_database_url)
    user = await store.create_user("ana", "hash")
    core = ConnectionHostCore(settings, store, FakeAssessor(), FakeGenerator(), lambda _: None)
    return core, store, user.id


class Socket:
    """What a host forwards to one socket, awaited item by item."""

    def __init__(self) -> None:
        self.items: asyncio.Queue[Outbound | None] = asyncio.Queue()

    def __call__(self, item: Outbound | None) -> None:
        self.items.put_nowait(item)

    async def next(self) -> Outbound | None:
        return await asyncio.wait_for(self.items.get(), timeout=5)


async def test_idle_user_is_evicted_from_its_host(tmp_path: Path, database_url: str) -> None:
    core, store, user_id = await _core(tmp_path, database_url)
    socket = Socket()
    assert await core.open_socket(user_id, "s1", SocketTicket(), socket) == []
    assert core.user_count == 1
    await core.receive(user_id, "s1", Ping(type="ping"))
    pong = await socket.next()
    assert isinstance(pong, str) and '"type":"pong"' in pong and '"seq":1' in pong
    await core.detach(user_id, "s1")
    assert await socket.next() is None
    assert core.user_count == 0
    await store.close()


async def test_revoking_a_token_closes_only_its_sockets(tmp_path: Path, database_url: str) -> None:
    core, store, user_id = await _core(tmp_path, database_url)
    a, b = Socket(), Socket()
    assert await core.open_socket(user_id, "a", SocketTicket(jti="one"), a) == []
    assert await core.open_socket(user_id, "b", SocketTicket(jti="two"), b) == []
    assert await core.revoke(user_id, "one") == 1
    close = await a.next()
    assert isinstance(close, Close) and close.code == 4004
    await core.receive(user_id, "b", Ping(type="ping"))
    assert '"type":"pong"' in str(await b.next())
    await store.close()


async def test_a_socket_attaching_while_a_counsellor_call_loads_the_actor_reaches_it(
    tmp_path: Path, database_url: str
) -> None:
    # Both wait on the same load; the counsellor's call resumes first, is done at once, and
    # its actor goes idle before the socket resumes: the socket must land on the live actor.
    core, store, user_id = await _core(tmp_path, database_url)
    call = asyncio.ensure_future(core.person(user_id, PersonCall("back", "counsellor-id")))
    socket = Socket()
    first = asyncio.ensure_future(core.open_socket(user_id, "s1", SocketTicket(), socket))
    assert await call is None
    assert await first == []
    actor = core.existing(user_id)
    assert actor is not None and actor.socket_count == 1
    await core.receive(user_id, "s1", Ping(type="ping"))
    assert '"type":"pong"' in str(await socket.next())
    await core.detach(user_id, "s1")
    await store.close()
