"""`RayPeers` without Ray: events for a counsellor whom no open socket takes start their grace
period, whether their host answers that none is open or is gone with its sockets."""

from __future__ import annotations

import asyncio
from typing import Any

from ray.exceptions import RayActorError

from actors.desk import PersonCall
from actors.peers import RayPeers
from haven.protocol import Pong


class _Call:
    def __init__(self, answer: Any) -> None:
        self._answer = answer

    async def remote(self, *_: Any) -> Any:
        if isinstance(self._answer, BaseException):
            raise self._answer
        return self._answer


class _Host:
    def __init__(self, answer: Any) -> None:
        self.deliver = _Call(answer)


class _Hosts:
    def __init__(self, answer: Any, exists: bool = True) -> None:
        self.host_ = _Host(answer)
        self.exists = exists
        self.forgotten: list[int] = []
        self.created: list[int] = []

    @property
    def size(self) -> int:
        return 4

    def index_of(self, user_id: str) -> int:
        return 3

    def find(self, index: int) -> Any | None:
        return self.host_ if self.exists else None

    async def host(self, index: int) -> Any:
        if not self.exists:
            self.created.append(index)
            self.exists = True
        return self.host_

    def forget(self, index: int) -> None:
        self.forgotten.append(index)


async def _deliver(answer: Any, exists: bool = True) -> tuple[list[str], _Hosts]:
    hosts = _Hosts(answer, exists)
    peers = RayPeers(hosts)
    gone: list[str] = []
    peers.unreachable = gone.append
    peers.deliver("cara", [Pong()])
    for _ in range(10):
        await asyncio.sleep(0)
    return gone, hosts


async def test_a_counsellor_with_a_socket_open_is_not_reported() -> None:
    gone, hosts = await _deliver(True)
    assert gone == [] and hosts.forgotten == []


async def test_a_counsellor_whose_host_has_no_socket_of_theirs_is_reported() -> None:
    gone, hosts = await _deliver(False)
    assert gone == ["cara"] and hosts.forgotten == []


async def test_a_counsellor_whose_host_died_is_reported_and_the_host_forgotten() -> None:
    gone, hosts = await _deliver(RayActorError())
    assert gone == ["cara"] and hosts.forgotten == [3]


async def test_no_host_is_started_for_a_counsellor_whose_host_does_not_exist() -> None:
    gone, hosts = await _deliver(True, exists=False)
    assert gone == ["cara"] and hosts.created == []


async def test_a_persons_missing_host_is_made_to_exist_for_a_counsellors_call() -> None:
    hosts = _Hosts(None, exists=False)
    hosts.host_.person = _Call(None)  # type: ignore[attr-defined]
    peers = RayPeers(hosts)
    assert await peers.person("ana", PersonCall("back", "cara")) is None
    assert hosts.created == [3]
