"""A bounded queue in front of a model: a few requests run, a few more wait, the rest are refused.

Refusing at once (`haven.errors.Busy`) when the queue is full keeps a burst from piling up
replies nobody will wait for; the caller can tell the person to try again in a moment.

Written with plain futures instead of `asyncio.Semaphore` so that one queue is not tied to the
event loop it first waited on (a backend outlives the loop of any single test).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from haven.errors import Busy


class AdmissionQueue:
    """At most `concurrency` requests run at once; at most `max_queued` more wait, in order."""

    def __init__(self, concurrency: int, max_queued: int) -> None:
        if concurrency < 1 or max_queued < 0:
            raise ValueError(
                f"need concurrency >= 1 and max_queued >= 0, got {concurrency}, {max_queued}"
            )
        self.concurrency = concurrency
        self.max_queued = max_queued
        self._free = concurrency
        self._admitted = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def running(self) -> int:
        return self.concurrency - self._free

    @property
    def admitted(self) -> int:
        """Requests running or waiting."""
        return self._admitted

    def admit(self) -> Admission:
        """A place in the queue, or `Busy` at once when every place is taken."""
        if self._admitted >= self.concurrency + self.max_queued:
            raise Busy()
        self._admitted += 1
        return Admission(self)

    def take_spare(self, count: int, keep_free: int) -> list[Admission]:
        """Up to `count` places that run at once, for optional work, taken only while at least
        `keep_free` places stay free and nobody waits: a request never waits behind them."""
        taken: list[Admission] = []
        limit = self.concurrency + self.max_queued
        while (
            len(taken) < count
            and self._free > keep_free
            and not self._waiters
            and self._admitted < limit
        ):
            self._free -= 1
            self._admitted += 1
            admission = Admission(self)
            admission._running = True
            taken.append(admission)
        return taken

    def _take(self) -> bool:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    def _give_back(self) -> None:
        self._free += 1
        while self._free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._free -= 1
                waiter.set_result(None)


class Admission:
    """One request's place: `start()` waits for its turn to run, `release()` frees the place.

    `release()` must be called exactly when the request's work has ended (it is idempotent),
    whether or not the request ever started.
    """

    def __init__(self, queue: AdmissionQueue) -> None:
        self._queue = queue
        self._running = False
        self._released = False

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        queue = self._queue
        if self._running:
            return
        if self._released:
            raise RuntimeError("admission already released")
        if queue._take():
            self._running = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Handed the slot in the same instant as cancelled: hold it so release() frees it.
                self._running = True
            else:
                with contextlib.suppress(ValueError):
                    queue._waiters.remove(waiter)
            raise
        self._running = True

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._queue._admitted -= 1
        if self._running:
            self._running = False
            self._queue._give_back()
