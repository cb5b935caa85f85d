"""Where ConnectionActors live: many per process, one process per pool slot.

A Ray actor per user costs a process (~90 MiB); a ConnectionActor object inside a host costs
kilobytes. `ConnectionHostCore` is that host without Ray, used in-process by the app tests;
`ConnectionHost` is the Ray actor around it (see `actors.pool`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Protocol

from actors.connection import ConnectionActor
from haven.backends import ReplyGenerator, RiskAssessor
from haven.protocol import ErrorEvent, Ping, SessionMessage
from haven.settings import Settings
from haven.storage.store import Store

logger = logging.getLogger(__name__)


class Connections(Protocol):
    """What the Gateway needs from wherever the users' ConnectionActors live."""

    def attach(self, user_id: str, socket_id: str) -> AsyncIterator[list[str]]:
        """Frames for this socket, in batches. The first batch is empty: the socket is
        registered and will receive every event of the user from then on."""
        ...

    async def receive(
        self, user_id: str, socket_id: str, message: SessionMessage | Ping
    ) -> None: ...

    async def reject(self, user_id: str, socket_id: str, error: ErrorEvent) -> None: ...

    async def detach(self, user_id: str, socket_id: str) -> None: ...


class ConnectionHostCore:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        assessor: RiskAssessor,
        generator: ReplyGenerator,
    ) -> None:
        self._settings = settings
        self._store = store
        self._assessor = assessor
        self._generator = generator
        self._actors: dict[str, ConnectionActor] = {}

    @property
    def user_count(self) -> int:
        return len(self._actors)

    def actor(self, user_id: str) -> ConnectionActor:
        actor = self._actors.get(user_id)
        if actor is None:
            actor = ConnectionActor(
                user_id,
                settings=self._settings,
                store=self._store,
                assessor=self._assessor,
                generator=self._generator,
                on_idle=self._evict,
            )
            self._actors[user_id] = actor
        return actor

    def _evict(self, user_id: str) -> None:
        actor = self._actors.get(user_id)
        if actor is not None and actor.idle:
            del self._actors[user_id]

    async def attach(self, user_id: str, socket_id: str) -> AsyncIterator[list[str]]:
        channel = self.actor(user_id).attach(socket_id)
        try:
            yield []
            while (batch := await channel.next_batch()) is not None:
                yield batch
        finally:
            # Also reached when the consumer goes away without detaching.
            actor = self._actors.get(user_id)
            if actor is not None:
                actor.detach(socket_id)

    def receive(self, user_id: str, socket_id: str, message: SessionMessage | Ping) -> None:
        self.actor(user_id).receive(socket_id, message)

    def reject(self, user_id: str, socket_id: str, error: ErrorEvent) -> None:
        self.actor(user_id).reject(socket_id, error)

    def detach(self, user_id: str, socket_id: str) -> None:
        actor = self._actors.get(user_id)
        if actor is not None:
            actor.detach(socket_id)


class LocalConnections:
    """`Connections` served by one in-process host (tests, and a single-process run)."""

    def __init__(self, core: ConnectionHostCore) -> None:
        self.core = core

    def attach(self, user_id: str, socket_id: str) -> AsyncIterator[list[str]]:
        return self.core.attach(user_id, socket_id)

    async def receive(self, user_id: str, socket_id: str, message: SessionMessage | Ping) -> None:
        self.core.receive(user_id, socket_id, message)

    async def reject(self, user_id: str, socket_id: str, error: ErrorEvent) -> None:
        self.core.reject(user_id, socket_id, error)

    async def detach(self, user_id: str, socket_id: str) -> None:
        self.core.detach(user_id, socket_id)
