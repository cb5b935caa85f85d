"""What one socket still has to write, bounded in bytes, and the writing of it.

The ConnectionActor never waits for a socket, so frames for a client that stops reading pile up
somewhere; here, per socket, where the limit can close just that socket (slow consumer) while
the user's other sockets and the reply itself carry on.

No task waits on an idle socket's outbox: the first item queued starts a writer task, which
writes until the outbox is empty (or a close order has been sent) and then ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from enum import Enum

from actors.channel import Close, Outbound
from haven.errors import SlowConsumer
from haven.protocol import ErrorEvent

logger = logging.getLogger(__name__)

Write = Callable[[Outbound], Awaitable[None]]


class OutboxState(Enum):
    OPEN = "open"  # takes items (written once started: the `connection` frame goes first)
    CLOSING = "closing"  # a close order is queued: nothing more is taken
    FINISHED = "finished"  # the close order was written, or the client went away


class Outbox:
    def __init__(self, max_bytes: int, write: Write) -> None:
        self._max_bytes = max_bytes
        self._write = write
        self._items: deque[tuple[Outbound, int]] = deque()
        self._bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._finished = asyncio.Event()
        self._on_finished: Callable[[], object] | None = None
        self._started = False
        self.state = OutboxState.OPEN

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def start(self, on_finished: Callable[[], object] | None = None) -> None:
        """Writes what is queued, and from now on each item as it comes; `on_finished` runs
        once writing has ended for good."""
        self._on_finished = on_finished
        self._started = True
        self._kick()

    def put(self, item: Outbound) -> None:
        if self.state in (OutboxState.CLOSING, OutboxState.FINISHED):
            return
        if isinstance(item, Close):
            self.state = OutboxState.CLOSING
            self._items.append((item, 0))
        else:
            size = len(item.encode())
            self._bytes += size
            if self._bytes > self._max_bytes:
                self.overflow()
                return
            self._items.append((item, size))
        self._kick()

    def overflow(self) -> None:
        """Drops what is queued and orders a retryable close: the client reconnects and
        resumes, which costs far less than holding an unbounded backlog."""
        error = SlowConsumer()
        self._items.clear()
        self._bytes = 0
        self.state = OutboxState.CLOSING
        close = Close(error.close_code or 1011, ErrorEvent.from_error(error).to_json())
        self._items.append((close, 0))
        self._kick()

    def end(self, code: int) -> None:
        """The event stream ended: write what is queued, then close with `code`."""
        if self.state not in (OutboxState.CLOSING, OutboxState.FINISHED):
            self.put(Close(code))

    async def wait_finished(self, timeout_s: float) -> bool:
        """Whether writing ended within `timeout_s`."""
        try:
            await asyncio.wait_for(self._finished.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def abort(self) -> None:
        """Stops writing now (the socket is being torn down)."""
        if self._writer is not None:
            self._writer.cancel()
        self._finish()

    def _kick(self) -> None:
        if self._started and self._writer is None and self._items:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._items:
                item, size = self._items.popleft()
                self._bytes -= size
                await self._write(item)
                if isinstance(item, Close):
                    self._finish()
                    return
        except Exception:
            # The client went away mid-send; the socket's reader sees the disconnect.
            logger.debug("a socket's write failed", exc_info=True)
            self._finish()
        finally:
            self._writer = None

    def _finish(self) -> None:
        if self.state is OutboxState.FINISHED:
            return
        self.state = OutboxState.FINISHED
        self._items.clear()
        self._bytes = 0
        self._finished.set()
        if self._on_finished is not None:
            self._on_finished()
