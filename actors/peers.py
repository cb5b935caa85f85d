"""`Peers` over Ray: how one host actor reaches the others for counsellors (`actors.desk`).

The same road events already take to sockets on any Gateway replica: a counsellor's socket
is served by the counsellor's own ConnectionActor (on the host their id hashes to), so a
person's host only has to hand that actor the session's events; its socket streams carry them
to whichever replica holds each socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

import ray
from ray.exceptions import RayActorError

from actors.desk import PersonCall
from haven.protocol import EscalationQueued, ServerEventBase, SessionHistory

logger = logging.getLogger(__name__)


class Hosts(Protocol):
    def index_of(self, user_id: str) -> int: ...

    async def host(self, index: int) -> Any:
        """The host, made to exist if it does not."""

    def find(self, index: int) -> Any | None:
        """The host if it exists; None if not (nobody is connected to it)."""

    @property
    def size(self) -> int: ...

    def forget(self, index: int) -> None: ...


class PeerHosts:
    """The pool as a host sees it: hosts found by name. One that does not exist is created by a
    Gateway replica (through its deployment handle), never by a host, so every host is owned by
    a replica and stops with it, as docs/deploy.md says; a host that created another would take
    it down when it died."""

    def __init__(
        self,
        size: int,
        index_of: Callable[[str], int],
        name: Callable[[int], str],
        gateway: Any,
    ) -> None:
        self._size = size
        self.index_of = index_of
        self._name = name
        self._gateway = gateway
        self._hosts: dict[int, Any] = {}

    @property
    def size(self) -> int:
        return self._size

    def find(self, index: int) -> Any | None:
        handle = self._hosts.get(index)
        if handle is None:
            try:
                handle = ray.get_actor(self._name(index))
            except ValueError:
                return None
            self._hosts[index] = handle
        return handle

    async def host(self, index: int) -> Any:
        handle = self.find(index)
        if handle is None:
            await self._gateway.ensure_host.remote(index)
            handle = self.find(index)
            if handle is None:
                raise RayActorError()
        return handle

    def forget(self, index: int) -> None:
        self._hosts.pop(index, None)


class RayPeers:
    def __init__(self, hosts: Hosts) -> None:
        self._hosts = hosts
        # Told of a counsellor none of whose sockets is open any more (their host died with
        # them, or nothing of theirs is on it): their grace period starts, as at a close.
        self.unreachable: Callable[[str], None] = lambda _counsellor_id: None
        # Per counsellor, events not yet handed over, and the one task handing them over: one
        # call at a time, so they arrive in the order the person's actor sent them.
        self._outgoing: dict[str, list[ServerEventBase]] = {}
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._announcing: set[asyncio.Task[None]] = set()

    async def person(self, person_id: str, call: PersonCall) -> SessionHistory | None:
        index = self._hosts.index_of(person_id)
        for attempt in range(2):
            host = await self._hosts.host(index)
            try:
                result: SessionHistory | None = await host.person.remote(person_id, call)
                return result
            except RayActorError:
                # The person's host died: a fresh one rebuilds their actor from storage.
                self._hosts.forget(index)
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def deliver(self, counsellor_id: str, events: list[ServerEventBase]) -> None:
        self._outgoing.setdefault(counsellor_id, []).extend(events)
        if counsellor_id not in self._senders:
            task = asyncio.get_running_loop().create_task(self._send(counsellor_id))
            self._senders[counsellor_id] = task

    async def _send(self, counsellor_id: str) -> None:
        try:
            while batch := self._outgoing.pop(counsellor_id, None):
                index = self._hosts.index_of(counsellor_id)
                host = self._hosts.find(index)
                try:
                    # No host: no socket of theirs anywhere; none is started for them.
                    if host is None or not await host.deliver.remote(counsellor_id, batch):
                        self.unreachable(counsellor_id)
                except RayActorError:
                    # Their sockets went with that host, with no close to start the grace
                    # period; rejoining gives them the history.
                    self._hosts.forget(index)
                    logger.warning("a counsellor's host is gone; %d events dropped", len(batch))
                    self.unreachable(counsellor_id)
        finally:
            self._senders.pop(counsellor_id, None)

    def announce(self, event: EscalationQueued) -> None:
        for index in range(self._hosts.size):
            host = self._hosts.find(index)
            if host is None:
                continue  # nobody is connected to a host that does not exist
            task = asyncio.get_running_loop().create_task(self._announce(index, host, event))
            self._announcing.add(task)
            task.add_done_callback(self._announcing.discard)

    async def _announce(self, index: int, host: Any, event: EscalationQueued) -> None:
        try:
            await host.announce.remote(event)
        except RayActorError:
            # Counsellors of that host reconnect elsewhere and read the queue again.
            self._hosts.forget(index)
        except Exception:
            logger.exception("could not tell host %d of an escalation", index)
