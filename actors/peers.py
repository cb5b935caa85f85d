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

from ray.exceptions import RayActorError

from actors.desk import PersonCall
from haven.protocol import EscalationQueued, ServerEventBase, SessionHistory

logger = logging.getLogger(__name__)


class Hosts(Protocol):
    def host_of(self, user_id: str) -> tuple[int, Any]: ...

    def everyone(self) -> list[tuple[int, Any]]: ...

    def forget(self, index: int) -> None: ...


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
        for attempt in range(2):
            index, host = self._hosts.host_of(person_id)
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
                index, host = self._hosts.host_of(counsellor_id)
                try:
                    if not await host.deliver.remote(counsellor_id, batch):
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
        for index, host in self._hosts.everyone():
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
