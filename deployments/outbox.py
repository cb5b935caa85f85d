"""What one socket still has to write, bounded in bytes.

The ConnectionActor never waits for a socket, so frames for a client that stops reading pile up
somewhere; here, per socket, where the limit can close just that socket (slow consumer) while
the user's other sockets and the reply itself carry on.
"""

from __future__ import annotations

import asyncio
from collections import deque

from actors.channel import Close, Outbound
from haven.errors import SlowConsumer
from haven.protocol import ErrorEvent


class Outbox:
    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._items: deque[tuple[Outbound, int]] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self._closed = False

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def put(self, item: Outbound) -> None:
        if self._closed:
            return
        if isinstance(item, Close):
            self._closed = True
            self._items.append((item, 0))
        else:
            size = len(item.encode())
            self._bytes += size
            if self._bytes > self._max_bytes:
                self.overflow()
                return
            self._items.append((item, size))
        self._ready.set()

    def overflow(self) -> None:
        """Drops what is queued and orders a retryable close: the client reconnects and
        resumes, which costs far less than holding an unbounded backlog."""
        error = SlowConsumer()
        self._items.clear()
        self._bytes = 0
        self._closed = True
        close = Close(error.close_code or 1011, ErrorEvent.from_error(error).to_json())
        self._items.append((close, 0))
        self._ready.set()

    def end(self, code: int) -> None:
        """The event stream ended: write what is queued, then close with `code`."""
        if not self._closed:
            self._closed = True
            self._items.append((Close(code), 0))
            self._ready.set()

    async def get(self) -> Outbound:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item, size = self._items.popleft()
        self._bytes -= size
        return item
