"""The outbound side of one socket as its ConnectionActor sees it: frames and a close order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Close:
    """Tells the socket's writer to send `frame` (if any) and close with `code`."""

    code: int
    frame: str | None = None


Outbound = str | Close


class SocketChannel:
    """The outbound items of one socket, drained in batches by its writer.

    Unbounded here on purpose: the actor must never block on one slow socket. The Gateway's
    writer bounds what it holds per socket and closes a socket that falls behind.
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Outbound | None] = asyncio.Queue()
        self._ended = False
        self._closing = False
        self._sink: Callable[[Outbound | None], None] | None = None

    @property
    def closing(self) -> bool:
        return self._closing

    def put(self, item: Outbound) -> None:
        if self._closing:
            return
        if isinstance(item, Close):
            # Nothing after a close order is ever written.
            self._closing = True
        if self._sink is not None:
            self._sink(item)
        else:
            self._queue.put_nowait(item)

    def close(self) -> None:
        if self._ended:
            return
        self._closing = True
        if self._sink is not None:
            self._ended = True
            self._sink(None)
        else:
            self._queue.put_nowait(None)

    def forward_to(self, sink: Callable[[Outbound | None], None]) -> None:
        """From now on every item goes straight to `sink`, in order, and None once the channel
        is closed, instead of waiting in the queue for `next_batch`: a host that carries many
        sockets on one stream needs no reader per socket (`actors.link`)."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            sink(item)
            if item is None:
                self._ended = True
                return
        self._sink = sink

    async def next_batch(self, max_items: int = 256) -> list[Outbound] | None:
        """The next items in order, or None once the channel is closed and drained."""
        if self._ended:
            return None
        batch: list[Outbound] = []
        item = await self._queue.get()
        while True:
            if item is None:
                self._ended = True
                return batch or None
            batch.append(item)
            if len(batch) >= max_items or self._queue.empty():
                return batch
            item = self._queue.get_nowait()
