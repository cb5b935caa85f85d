"""A ConnectionHost lets go of the sockets of a Gateway replica that died, on real Ray.

Ray does not end a host's `link` stream when the actor reading it dies, so without the host's
own check the link's sockets would stay registered forever. A plain named actor stands in for
the Gateway replica: it opens sockets through its link, then is killed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.actor import ActorHandle

from actors.connection import SocketTicket
from actors.owners import GatewayRef
from actors.pool import ConnectionHost, HostLink, host_actor_options
from haven.settings import Settings
from haven.storage import migrate
from haven.storage.store import Store

pytestmark = pytest.mark.integration

NAMESPACE = "haven-gateway-loss"


class NoModels:
    """Stands in for the model deployments' handles: these sockets never start a turn."""

    def options(self, **_: Any) -> NoModels:
        return self


class FakeGateway:
    """Opens sockets on the host through one link, as `RayConnections` does."""

    def __init__(self, host: ActorHandle) -> None:
        self._host = host
        self._batches = 0
        self._link: HostLink | None = None

    async def open(self, user_id: str, socket_id: str) -> None:
        if self._link is None:
            self._link = HostLink(self._host, GatewayRef.current(), lambda *_: None)
        await self._link.open(user_id, socket_id, SocketTicket(), lambda _: None)
        self._batches += 1

    def batches(self) -> int:
        return self._batches


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    # Inside the integration tier the shared cluster may already be up: use it as it is.
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


async def _user(settings: Settings) -> str:
    await asyncio.to_thread(migrate.upgrade, settings.resolved_database_url)
    store = Store.from_url(settings.resolved_database_url)
    try:
        return (await store.create_user("ana", "hash")).id
    finally:
        await store.close()


def _wait_for(check: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_host_detaches_the_sockets_of_a_killed_gateway(ray_local: None, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, gateway_check_s=0.5)
    user_id = asyncio.run(_user(settings))
    host_cls: Any = ray.remote(ConnectionHost)
    host = host_cls.options(
        **host_actor_options(settings, "gateway-loss-host"), namespace=NAMESPACE
    ).remote(settings, NoModels(), NoModels())
    gateway_cls: Any = ray.remote(num_cpus=0)(FakeGateway)
    doomed = gateway_cls.options(name="gateway-doomed", namespace=NAMESPACE).remote(host)
    kept = gateway_cls.options(name="gateway-kept", namespace=NAMESPACE).remote(host)
    try:
        doomed.open.remote(user_id, "doomed-1")
        doomed.open.remote(user_id, "doomed-2")
        kept.open.remote(user_id, "kept-1")

        def sockets() -> int:
            count: int = ray.get(host.stats.remote())["sockets"]
            return count

        assert _wait_for(lambda: sockets() == 3, 30), sockets()

        # Each socket gets its first (registration) batch. The host counts a socket before
        # that batch reaches the replica, so the count alone does not say it arrived.
        def batches() -> tuple[int, int]:
            return ray.get(doomed.batches.remote()), ray.get(kept.batches.remote())

        assert _wait_for(lambda: batches() == (2, 1), 30), batches()

        ray.kill(doomed)
        assert _wait_for(lambda: sockets() == 1, 15), sockets()
        # The live replica's socket stays, across further checks.
        time.sleep(3 * settings.gateway_check_s)
        assert ray.get(host.stats.remote()) == {"users": 1, "sockets": 1}

        ray.kill(kept)
        assert _wait_for(lambda: ray.get(host.stats.remote()) == {"users": 0, "sockets": 0}, 15)
    finally:
        for actor in (doomed, kept, host):
            ray.kill(actor)
