"""Where ConnectionActors live: many per process, one process per pool slot.

A Ray actor per user costs a process (~90 MiB); a ConnectionActor object inside a host costs
kilobytes. `ConnectionHostCore` is that host without Ray, used in-process by the app tests;
`ConnectionHost` is the Ray actor around it (see `actors.pool`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from actors.channel import Outbound
from actors.connection import ConnectionActor, SocketTicket
from actors.limits import SlidingWindow
from actors.turn import OutputScreen
from haven.backends import ReplyGenerator, RiskAssessor
from haven.errors import HavenError
from haven.protocol import ClientFrame
from haven.settings import Settings
from haven.storage.store import Store

logger = logging.getLogger(__name__)


class Connections(Protocol):
    """What the Gateway needs from wherever the users' ConnectionActors live."""

    def attach(
        self, user_id: str, socket_id: str, ticket: SocketTicket
    ) -> AsyncIterator[list[Outbound]]:
        """Outbound items for this socket, in batches. The first batch is empty once the socket
        is registered (it will receive every event of the user from then on), or holds the
        close order of a refused socket."""
        ...

    async def receive(self, user_id: str, socket_id: str, frame: ClientFrame) -> None: ...

    async def reject(self, user_id: str, socket_id: str, error: HavenError) -> None: ...

    async def refresh(
        self, user_id: str, socket_id: str, jti: str | None, expires_at: float
    ) -> None: ...

    async def revoke(self, user_id: str, jti: str) -> int: ...

    async def erase(self, user_id: str) -> int:
        """The user's account was erased: closes all their sockets (4010)."""
        ...

    async def detach(self, user_id: str, socket_id: str) -> None: ...


class ConnectionHostCore:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        assessor: RiskAssessor,
        generator: ReplyGenerator,
        output_screen: OutputScreen,
    ) -> None:
        self._settings = settings
        self._store = store
        self._assessor = assessor
        self._generator = generator
        self._output_screen = output_screen
        self._actors: dict[str, ConnectionActor] = {}
        self._loading: dict[str, asyncio.Task[ConnectionActor]] = {}
        self._retiring: dict[str, asyncio.Task[None]] = {}
        # New-connection windows per user; kept past eviction so reconnect loops are counted.
        self._connects: dict[str, SlidingWindow] = {}

    @property
    def user_count(self) -> int:
        return len(self._actors)

    @property
    def socket_count(self) -> int:
        return sum(actor.socket_count for actor in self._actors.values())

    def existing(self, user_id: str) -> ConnectionActor | None:
        return self._actors.get(user_id)

    async def actor(self, user_id: str) -> ConnectionActor:
        """The user's actor, rebuilt from storage if this host has none."""
        actor = self._actors.get(user_id)
        if actor is not None:
            return actor
        loading = self._loading.get(user_id)
        if loading is None:
            loading = asyncio.get_running_loop().create_task(self._load(user_id))
            self._loading[user_id] = loading
        return await asyncio.shield(loading)

    async def _load(self, user_id: str) -> ConnectionActor:
        try:
            retiring = self._retiring.get(user_id)
            if retiring is not None:
                # The previous actor's last events must be in storage before this one reads it.
                await asyncio.shield(retiring)
            actor = ConnectionActor(
                user_id,
                settings=self._settings,
                store=self._store,
                assessor=self._assessor,
                generator=self._generator,
                output_screen=self._output_screen,
                on_idle=self._evict,
                connects=self._connects.setdefault(
                    user_id,
                    SlidingWindow(self._settings.new_connections_per_minute, 60.0),
                ),
            )
            await actor.load()
            self._actors[user_id] = actor
            return actor
        finally:
            self._loading.pop(user_id, None)

    def _evict(self, user_id: str) -> None:
        actor = self._actors.get(user_id)
        if actor is None or not actor.idle:
            return
        del self._actors[user_id]
        window = self._connects.get(user_id)
        if window is not None and not window.active:
            del self._connects[user_id]
        task = asyncio.get_running_loop().create_task(actor.replay.drain())
        self._retiring[user_id] = task
        task.add_done_callback(lambda _: self._retiring.pop(user_id, None))

    async def attach(
        self, user_id: str, socket_id: str, ticket: SocketTicket
    ) -> AsyncIterator[list[Outbound]]:
        actor = await self.actor(user_id)
        channel = actor.attach(socket_id, ticket)
        try:
            first = await channel.next_batch() if channel.closing else []
            yield first or []
            while (batch := await channel.next_batch()) is not None:
                yield batch
        finally:
            # Also reached when the consumer goes away without detaching.
            current = self._actors.get(user_id)
            if current is not None:
                current.detach(socket_id)

    async def receive(self, user_id: str, socket_id: str, frame: ClientFrame) -> None:
        (await self.actor(user_id)).receive(socket_id, frame)

    async def reject(self, user_id: str, socket_id: str, error: HavenError) -> None:
        (await self.actor(user_id)).reject(socket_id, error)

    async def refresh(
        self, user_id: str, socket_id: str, jti: str | None, expires_at: float
    ) -> None:
        actor = self._actors.get(user_id)
        if actor is not None:
            actor.refresh(socket_id, jti, expires_at)

    async def revoke(self, user_id: str, jti: str) -> int:
        actor = self._actors.get(user_id)
        return actor.revoke(jti) if actor is not None else 0

    async def erase(self, user_id: str) -> int:
        actor = self._actors.get(user_id)
        return actor.erase() if actor is not None else 0

    async def detach(self, user_id: str, socket_id: str) -> None:
        actor = self._actors.get(user_id)
        if actor is not None:
            actor.detach(socket_id)


class LocalConnections(ConnectionHostCore):
    """`Connections` served in this process (tests, and a single-process run)."""
