"""ConnectionActor: one per user, owner of that user's live sockets and turns.

Every event of a turn is fanned out to all of the user's sockets (multi-device); replies to a
single frame (an error in it, a pong) go only to the socket that sent it. Turns run one at a
time, in arrival order, in a worker task that does not depend on any socket: a reply whose
sockets have all gone is still completed and stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from actors.turn import Turn, TurnContext
from haven.backends import ReplyGenerator, RiskAssessor
from haven.errors import Busy, HavenError
from haven.protocol import ErrorEvent, Ping, Pong, ServerEventBase, SessionMessage
from haven.settings import Settings
from haven.storage.store import Store

logger = logging.getLogger(__name__)


class SocketChannel:
    """The outbound frames of one socket, drained in batches by its writer."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._ended = False

    def put(self, frame: str) -> None:
        if not self._ended:
            self._queue.put_nowait(frame)

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def next_batch(self, max_frames: int = 256) -> list[str] | None:
        """The next frames in order, or None once the channel is closed and drained."""
        if self._ended:
            return None
        batch: list[str] = []
        item = await self._queue.get()
        while True:
            if item is None:
                self._ended = True
                return batch or None
            batch.append(item)
            if len(batch) >= max_frames or self._queue.empty():
                return batch
            item = self._queue.get_nowait()


@dataclass(frozen=True)
class _QueuedTurn:
    socket_id: str
    message: SessionMessage


class ConnectionActor:
    def __init__(
        self,
        user_id: str,
        *,
        settings: Settings,
        store: Store,
        assessor: RiskAssessor,
        generator: ReplyGenerator,
        on_idle: Callable[[str], None],
    ) -> None:
        self.user_id = user_id
        self._settings = settings
        self._store = store
        self._assessor = assessor
        self._generator = generator
        self._on_idle = on_idle
        self._channels: dict[str, SocketChannel] = {}
        self._pending: asyncio.Queue[_QueuedTurn] = asyncio.Queue(maxsize=settings.max_queued_turns)
        self._worker: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        return not self._channels and self._worker is None

    @property
    def socket_count(self) -> int:
        return len(self._channels)

    def attach(self, socket_id: str) -> SocketChannel:
        channel = SocketChannel()
        self._channels[socket_id] = channel
        return channel

    def detach(self, socket_id: str) -> None:
        channel = self._channels.pop(socket_id, None)
        if channel is not None:
            channel.close()
        if self.idle:
            self._on_idle(self.user_id)

    def receive(self, socket_id: str, message: SessionMessage | Ping) -> None:
        if isinstance(message, Ping):
            self.send_to(socket_id, Pong())
            return
        try:
            self._pending.put_nowait(_QueuedTurn(socket_id, message))
        except asyncio.QueueFull:
            self.send_to(socket_id, ErrorEvent.from_error(Busy()))
            return
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run_turns())

    def reject(self, socket_id: str, error: ErrorEvent) -> None:
        self.send_to(socket_id, error)

    def broadcast(self, event: ServerEventBase) -> None:
        frame = event.to_json()
        for channel in self._channels.values():
            channel.put(frame)

    def send_to(self, socket_id: str, event: ServerEventBase) -> None:
        channel = self._channels.get(socket_id)
        if channel is not None:
            channel.put(event.to_json())

    async def _run_turns(self) -> None:
        try:
            while not self._pending.empty():
                queued = self._pending.get_nowait()
                turn = Turn(self._context(queued.socket_id), queued.message)
                try:
                    await turn.run()
                except Exception:
                    # A defect in the pipeline must not end this user's worker or leak details.
                    logger.exception("turn failed for user %s", self.user_id)
                    self.broadcast(ErrorEvent.from_error(HavenError()))
        finally:
            self._worker = None
            if self.idle:
                self._on_idle(self.user_id)

    def _context(self, socket_id: str) -> TurnContext:
        return TurnContext(
            user_id=self.user_id,
            settings=self._settings,
            store=self._store,
            assessor=self._assessor,
            generator=self._generator,
            broadcast=self.broadcast,
            reply=lambda event: self.send_to(socket_id, event),
        )
