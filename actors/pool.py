"""The fixed pool of ConnectionHost Ray actors, and the Gateway's view of it.

A user always maps to the same host (a stable hash of the user id modulo the pool size), so
one ConnectionActor sees every socket and every turn of that user, whichever Gateway replica
or node the sockets arrive on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import ActorDiedError, RayActorError
from ray.serve.handle import DeploymentHandle
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.channel import Outbound
from actors.connection import SocketTicket
from actors.desk import PersonCall
from actors.host import ConnectionHostCore
from actors.link import Deliver, Envelope, LinkDemux, LinkLost, LinkSink
from actors.owners import GatewayOwners, GatewayRef, actor_gone
from actors.peers import PeerHosts, RayPeers
from deployments.clients import ServeReplyGenerator, ServeRiskAssessor
from haven import gc_policy, loop_probe
from haven.call_coalescer import CallCoalescer
from haven.errors import HavenError
from haven.protocol import ClientFrame, EscalationQueued, ServerEventBase, SessionHistory
from haven.settings import Settings
from haven.storage.master_key import master_keys
from haven.storage.store import Store

# Concurrent calls on a host: a link per Gateway replica, and each socket's calls in flight.
HOST_MAX_CONCURRENCY = 100_000
# How long `open` waits for its link's stream to start on the host.
LINK_START_S = 10.0
# Frames of many sockets go to a host together while earlier calls are out (`CallCoalescer`).
FRAMES_IN_FLIGHT = 2
FRAMES_PER_CALL = 256
# Waits before each new try to open a socket on a host found dead (16 s in all: after a node is
# lost, Ray may hand out the dead host by its name for several seconds).
OPEN_RETRY_WAITS_S = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def host_index(user_id: str, pool_size: int) -> int:
    digest = hashlib.sha256(user_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % pool_size


def host_actor_options(settings: Settings, name: str, node_id: str | None = None) -> dict[str, Any]:
    """Ray options for the host actor `name`.

    A host asks for no CPU, and Ray starts an actor that asks for nothing on a random node.
    `connection_host_resources` names custom resources (`ray start --resources`) a host must
    have: hosts then stay on the nodes that advertise them. `node_id` (from `node_for_host`)
    prefers one of those nodes, so that host i lands on the same node whichever Gateway replica
    creates it and the hosts spread evenly; without it, Ray's SPREAD only spreads the hosts one
    replica creates, and two replicas creating one host each may put both on one node.
    """
    options: dict[str, Any] = {
        "name": name,
        "get_if_exists": True,
        # The host only waits on I/O; it must schedule on a small node beside the models.
        "num_cpus": 0,
        "max_concurrency": HOST_MAX_CONCURRENCY,
    }
    if settings.connection_host_resources:
        options["resources"] = dict(settings.connection_host_resources)
        options["scheduling_strategy"] = (
            # Soft: if that node is gone or full, another node with the resources takes it.
            NodeAffinitySchedulingStrategy(node_id, soft=True) if node_id else "SPREAD"
        )
    return options


def node_for_host(
    nodes: list[dict[str, Any]], resources: dict[str, float], index: int
) -> str | None:
    """The node host `index` should run on: the live nodes advertising every one of
    `resources`, in node-id order, taken round-robin. None when there are none."""
    fit = sorted(
        node["NodeID"]
        for node in nodes
        if node.get("Alive")
        and all(node.get("Resources", {}).get(k, 0) >= amount for k, amount in resources.items())
    )
    return fit[index % len(fit)] if fit else None


class ConnectionHost:
    """Ray actor body: a `ConnectionHostCore` with its own database pool and model clients."""

    def __init__(
        self,
        settings: Settings,
        classifier: DeploymentHandle,
        generator: DeploymentHandle,
        name_prefix: str = "",
        gateway: DeploymentHandle | None = None,
    ) -> None:
        from models.safety.output_screen import unsafe_reply

        self._store = Store.from_url(settings.resolved_database_url, master_keys(settings))
        size = settings.connection_hosts
        peers = RayPeers(
            PeerHosts(
                size,
                lambda user_id: host_index(user_id, size),
                lambda index: host_name(name_prefix, index),
                gateway,
            )
        )
        self._core = ConnectionHostCore(
            settings,
            self._store,
            ServeRiskAssessor(
                classifier,
                max_in_flight=settings.safety_calls_in_flight,
                max_items=settings.safety_turns_per_call,
            ),
            ServeReplyGenerator(generator),
            unsafe_reply,
            peers=peers,
        )
        peers.unreachable = self._core.counsellor_unreachable
        self._check_s = settings.gateway_check_s
        self._links: dict[str, LinkSink] = {}
        self._owners = GatewayOwners(actor_gone, self._release)
        self._watch: asyncio.Task[None] | None = None
        # Started: what exists now lives as long as the host (`haven.gc_policy`).
        gc_policy.settle()

    async def link(
        self, link_id: str, owner: GatewayRef | None = None
    ) -> AsyncIterator[list[Envelope]]:
        """The one stream that carries the items of every socket a Gateway replica opens here
        with this `link_id` (`actors.link`)."""
        loop_probe.start()
        sink = self._links.setdefault(link_id, LinkSink())
        if owner is not None:
            self._owners.add(owner, link_id)
            if self._watch is None:
                self._watch = asyncio.get_running_loop().create_task(
                    self._owners.watch(self._check_s)
                )
        try:
            while (envelopes := await sink.next()) is not None:
                yield envelopes
        finally:
            # Also reached when the replica cancels the stream.
            self._owners.discard(link_id)
            await self._release(link_id)

    async def open(
        self, user_id: str, socket_id: str, ticket: SocketTicket, link_id: str
    ) -> list[Outbound]:
        sink = await self._sink(link_id)
        first = await self._core.open_socket(user_id, socket_id, ticket, sink.feed(socket_id))
        if not first:
            # Registered (a refused socket's first batch is its close order).
            sink.sockets[socket_id] = user_id
        return first

    async def _sink(self, link_id: str) -> LinkSink:
        # The replica starts the link's stream before its first `open`, but Ray may start the
        # two calls on this actor in either order.
        deadline = asyncio.get_running_loop().time() + LINK_START_S
        while (sink := self._links.get(link_id)) is None:
            if asyncio.get_running_loop().time() >= deadline:
                raise LinkLost(f"link {link_id} is not open here")
            await asyncio.sleep(0.01)
        if sink.closed:
            raise LinkLost(f"link {link_id} has ended")
        return sink

    async def _release(self, link_id: str) -> int:
        sink = self._links.pop(link_id, None)
        return await self._core.release(sink) if sink is not None else 0

    async def receive_many(self, frames: list[tuple[str, str, ClientFrame]]) -> list[bool]:
        return await self._core.receive_many(frames)

    async def reject(self, user_id: str, socket_id: str, error: HavenError) -> None:
        await self._core.reject(user_id, socket_id, error)

    async def refresh(
        self, user_id: str, socket_id: str, jti: str | None, expires_at: float
    ) -> None:
        await self._core.refresh(user_id, socket_id, jti, expires_at)

    async def revoke(self, user_id: str, jti: str) -> int:
        return await self._core.revoke(user_id, jti)

    async def erase(self, user_id: str) -> int:
        return await self._core.erase(user_id)

    async def forget_session(self, user_id: str, session_id: str) -> None:
        await self._core.forget_session(user_id, session_id)

    async def detach(self, user_id: str, socket_id: str) -> None:
        await self._core.detach(user_id, socket_id)

    async def stats(self) -> dict[str, int]:
        return {"users": self._core.user_count, "sockets": self._core.socket_count}

    # Counsellors (`actors.desk`): from a Gateway replica, and from the other hosts.

    async def join(self, counsellor_id: str, session_id: str) -> SessionHistory:
        return await self._core.join(counsellor_id, session_id)

    async def leave(self, counsellor_id: str, session_id: str) -> None:
        await self._core.leave(counsellor_id, session_id)

    async def person(self, person_id: str, call: PersonCall) -> SessionHistory | None:
        return await self._core.person(person_id, call)

    async def deliver(self, counsellor_id: str, events: list[ServerEventBase]) -> bool:
        return self._core.deliver(counsellor_id, events)

    async def announce(self, event: EscalationQueued) -> None:
        await self._core.announce_here(event)


def host_name(name_prefix: str, index: int) -> str:
    return f"{name_prefix}-connection-host-{index}"


class HostPool:
    """A Gateway replica's handles to the pool's named host actors, each created on first use
    (or found, when another replica created it first), owned by the replica that created it."""

    def __init__(
        self,
        settings: Settings,
        classifier: DeploymentHandle,
        generator: DeploymentHandle,
        name_prefix: str,
        gateway: DeploymentHandle | None = None,
    ) -> None:
        self.settings = settings
        self._classifier = classifier
        self._generator = generator
        self._name_prefix = name_prefix
        # The Gateway deployment, through which hosts have a missing host created.
        self._gateway = gateway
        self._hosts: dict[int, ActorHandle] = {}

    def host(self, index: int) -> ActorHandle:
        handle = self._hosts.get(index)
        if handle is None:
            remote_cls: Any = ray.remote(ConnectionHost)
            name = host_name(self._name_prefix, index)
            node_id = None
            if self.settings.connection_host_resources:
                node_id = node_for_host(ray.nodes(), self.settings.connection_host_resources, index)
            options = host_actor_options(self.settings, name, node_id)
            handle = remote_cls.options(**options).remote(
                self.settings, self._classifier, self._generator, self._name_prefix, self._gateway
            )
            self._hosts[index] = handle
        return handle

    def forget(self, index: int) -> None:
        """The host died: the next call creates a fresh one (rebuilt from storage)."""
        self._hosts.pop(index, None)


class HostLink:
    """A Gateway replica's traffic with one host: the `link` stream that brings every socket's
    items (handed out by a `LinkDemux`), and inbound frames sent together (`CallCoalescer`)."""

    def __init__(
        self,
        host: ActorHandle,
        owner: GatewayRef | None,
        on_lost: Callable[[HostLink, BaseException], None],
    ) -> None:
        self.host = host
        self.id = uuid.uuid4().hex
        self.demux = LinkDemux()
        self._on_lost = on_lost
        self._frames: CallCoalescer[tuple[str, str, ClientFrame], bool] = CallCoalescer(
            self._send_frames, max_in_flight=FRAMES_IN_FLIGHT, max_items=FRAMES_PER_CALL
        )
        stream: Any = host.link.options(num_returns="streaming").remote(self.id, owner)
        self._reader: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            self._read(stream)
        )

    async def _read(self, stream: Any) -> None:
        error: BaseException
        try:
            async for ref in stream:
                self.demux.dispatch(await ref)
            error = LinkLost("the host ended the link")
        except asyncio.CancelledError:
            error = LinkLost("the link was closed")
            raise
        except Exception as failure:
            error = failure
        finally:
            self.demux.lose(error)
            self._on_lost(self, error)

    async def open(
        self, user_id: str, socket_id: str, ticket: SocketTicket, deliver: Deliver
    ) -> list[Outbound]:
        self.demux.register(socket_id, deliver)
        try:
            first: list[Outbound] = await self.host.open.remote(user_id, socket_id, ticket, self.id)
        except BaseException:
            self.demux.unregister(socket_id)
            raise
        if first:
            self.demux.unregister(socket_id)  # refused: nothing more comes for it
        return first

    async def receive(self, user_id: str, socket_id: str, frame: ClientFrame) -> None:
        if not await self._frames.submit((user_id, socket_id, frame)):
            raise LinkLost("the host could not take a frame")

    async def _send_frames(self, frames: list[tuple[str, str, ClientFrame]]) -> list[bool]:
        taken: list[bool] = await self.host.receive_many.remote(frames)
        return taken

    def close(self) -> None:
        self._reader.cancel()


class RayConnections:
    """`Connections` over the pool of named host actors, created on first use."""

    def __init__(
        self,
        settings: Settings,
        classifier: DeploymentHandle,
        generator: DeploymentHandle,
        name_prefix: str,
        gateway: DeploymentHandle | None = None,
    ) -> None:
        self._settings = settings
        self._pool = HostPool(settings, classifier, generator, name_prefix, gateway)
        # This Gateway replica, so a host can drop its sockets should the replica die.
        self._owner = GatewayRef.current()
        self._links: dict[int, HostLink] = {}

    def host(self, index: int) -> ActorHandle:
        return self._pool.host(index)

    def host_for(self, user_id: str) -> ActorHandle:
        return self.host(host_index(user_id, self._settings.connection_hosts))

    def link(self, index: int) -> HostLink:
        link = self._links.get(index)
        if link is None:
            link = HostLink(self.host(index), self._owner, functools.partial(self._lost, index))
            self._links[index] = link
        return link

    def _lost(self, index: int, link: HostLink, error: BaseException) -> None:
        if self._links.get(index) is link:
            del self._links[index]
            if isinstance(error, RayActorError):
                # The host died: the next socket starts a fresh one (rebuilt from storage).
                self._pool.forget(index)

    def _host_died(self, index: int, error: RayActorError) -> None:
        """Forgets the host's handle and link: the next socket starts a fresh host."""
        link = self._links.pop(index, None)
        if link is not None:
            link.close()
            if isinstance(error, ActorDiedError):
                # A host lost with its node keeps its name while its owner lives, and the
                # name would keep handing out the dead host: killing it lets the name go.
                with contextlib.suppress(Exception):
                    ray.kill(link.host, no_restart=True)
        self._pool.forget(index)

    async def open(
        self, user_id: str, socket_id: str, ticket: SocketTicket, deliver: Deliver
    ) -> list[Outbound]:
        index = host_index(user_id, self._settings.connection_hosts)
        for wait_s in OPEN_RETRY_WAITS_S:
            try:
                return await self.link(index).open(user_id, socket_id, ticket, deliver)
            except RayActorError as error:
                # The host died (a handle may point at a host that died while no socket of
                # ours used it): a fresh one, rebuilt from storage, gets the socket instead.
                # Just after a death Ray may still hand out the dead actor by its name, so the
                # next tries wait a little longer each.
                self._host_died(index, error)
                await asyncio.sleep(wait_s)
        return await self.link(index).open(user_id, socket_id, ticket, deliver)

    async def receive(self, user_id: str, socket_id: str, frame: ClientFrame) -> None:
        await self.link(host_index(user_id, self._settings.connection_hosts)).receive(
            user_id, socket_id, frame
        )

    async def reject(self, user_id: str, socket_id: str, error: HavenError) -> None:
        await self.host_for(user_id).reject.remote(user_id, socket_id, error)

    async def refresh(
        self, user_id: str, socket_id: str, jti: str | None, expires_at: float
    ) -> None:
        await self.host_for(user_id).refresh.remote(user_id, socket_id, jti, expires_at)

    async def revoke(self, user_id: str, jti: str) -> int:
        result: int = await self.host_for(user_id).revoke.remote(user_id, jti)
        return result

    async def erase(self, user_id: str) -> int:
        result: int = await self.host_for(user_id).erase.remote(user_id)
        return result

    async def forget_session(self, user_id: str, session_id: str) -> None:
        await self.host_for(user_id).forget_session.remote(user_id, session_id)

    async def detach(self, user_id: str, socket_id: str) -> None:
        await self.host_for(user_id).detach.remote(user_id, socket_id)

    async def join(self, counsellor_id: str, session_id: str) -> SessionHistory:
        history: SessionHistory = await self.host_for(counsellor_id).join.remote(
            counsellor_id, session_id
        )
        return history

    async def leave(self, counsellor_id: str, session_id: str) -> None:
        await self.host_for(counsellor_id).leave.remote(counsellor_id, session_id)

    async def settle(self) -> None:
        """Nothing to wait for here: the hosts' work runs in their own processes, against their
        own connections to the database."""

    async def ready(self) -> None:
        """Returns once every host of the pool answers (creating those not yet started, and
        a fresh one for each that died since this replica last used it)."""
        for index in range(self._settings.connection_hosts):
            await self.ensure(index)

    async def ensure(self, index: int) -> None:
        """Host `index` exists and answers, created by this replica if it did not exist."""
        try:
            await self.host(index).stats.remote()
        except RayActorError:
            self._pool.forget(index)
            await self.host(index).stats.remote()
