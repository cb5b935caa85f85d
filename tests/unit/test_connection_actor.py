"""The per-user ConnectionActor and its host, without Ray."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from actors.connection import SocketChannel
from actors.host import ConnectionHostCore
from actors.pool import host_index
from haven.protocol import Ping
from haven.risk import RiskLevel
from haven.safety_policy import escalates, reply_intent
from haven.settings import Settings
from haven.storage import migrate
from haven.storage.store import Store
from tests.fakes import FakeAssessor, FakeGenerator


async def test_channel_drains_in_order_in_batches_then_ends() -> None:
    channel = SocketChannel()
    for n in range(5):
        channel.put(str(n))
    channel.close()
    channel.put("after close")
    assert await channel.next_batch(max_frames=3) == ["0", "1", "2"]
    assert await channel.next_batch() == ["3", "4"]
    assert await channel.next_batch() is None


def test_host_index_is_stable_and_spreads_users() -> None:
    assert host_index("user-1", 4) == host_index("user-1", 4)
    used = {host_index(f"user-{n}", 4) for n in range(200)}
    assert used == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("level", "escalate", "intent"),
    [
        (RiskLevel.NONE, False, "validate"),
        (RiskLevel.LOW, False, "validate"),
        (RiskLevel.MEDIUM, False, "safety_check_in"),
        (RiskLevel.HIGH, True, "crisis_support"),
        (RiskLevel.CRITICAL, True, "crisis_support"),
    ],
)
def test_policy_escalates_from_high(level: RiskLevel, escalate: bool, intent: str) -> None:
    assert escalates(level) is escalate
    assert reply_intent(level) == intent


async def test_idle_user_is_evicted_from_its_host(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    await asyncio.to_thread(migrate.upgrade, settings.resolved_database_url)
    store = Store.from_url(settings.resolved_database_url)
    core = ConnectionHostCore(settings, store, FakeAssessor(), FakeGenerator())
    frames = core.attach("u1", "s1")
    assert await anext(frames) == []
    assert core.user_count == 1
    core.receive("u1", "s1", Ping(type="ping"))
    batch = await anext(frames)
    assert '"type":"pong"' in batch[0]
    core.detach("u1", "s1")
    with pytest.raises(StopAsyncIteration):
        await anext(frames)
    assert core.user_count == 0
    await store.close()
