"""Concurrent calls of one kind, sent together: each caller awaits its own item's result, but
items that arrive while the remote side is busy share one round trip.

A remote call can cost far more per call than per item (a Serve handle call costs the classifier
replica milliseconds of CPU in Serve's request path, whatever it carries; docs/benchmarks.md).
`CallCoalescer` keeps at most `max_in_flight` calls out. An item submitted while a slot is free
is sent at once, alone: a single caller never waits for company and there is no timer. Items
submitted while every slot is taken wait, and go together (up to `max_items` per call, in the
order they came) as soon as a call returns, so the busier the remote side, the fuller its calls.
A call's slot frees one loop step after its results are handed out, so callers that submit
again straight away join those already waiting rather than going out alone.

An item is in one of three states: *waiting* (in `_waiting`), *sent* (in the `_Call` that
carries it, one of `_calls`), or *settled* (its future holds a result, an error, or was
cancelled).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class _Waiter(Generic[T, R]):
    item: T
    future: asyncio.Future[R]
    call: _Call[T, R] | None = None


@dataclass(eq=False)
class _Call(Generic[T, R]):
    waiters: list[_Waiter[T, R]]
    # Waiters still awaiting this call; at zero nobody wants its results and it is cancelled.
    live: int
    task: asyncio.Task[None] | None = field(default=None)


class CallCoalescer(Generic[T, R]):
    """`await submit(item)` -> that item's result from `send(items) -> results` (in order).

    A failed call raises its exception in each of its own waiters and in no one else's. A caller
    cancelled while waiting leaves the queue; one cancelled while its call is out gets nothing,
    and a call whose callers have all gone is cancelled, so that a hung remote side holds a slot
    only as long as someone waits on it. Use from one event loop at a time.
    """

    def __init__(
        self,
        send: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_in_flight: int = 2,
        max_items: int = 64,
    ) -> None:
        if max_in_flight < 1 or max_items < 1:
            raise ValueError("max_in_flight and max_items must be at least 1")
        self._send = send
        self._max_in_flight = max_in_flight
        self._max_items = max_items
        self._waiting: deque[_Waiter[T, R]] = deque()
        self._calls: set[_Call[T, R]] = set()
        # A call carries many callers' items, so it runs in none of their contexts (a turn id
        # set by one caller must not follow the others' items): in the creator's instead.
        self._context = contextvars.copy_context()

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def submit(self, item: T) -> R:
        waiter: _Waiter[T, R] = _Waiter(item, asyncio.get_running_loop().create_future())
        self._waiting.append(waiter)
        self._dispatch()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            self._forget(waiter)
            raise

    def _dispatch(self) -> None:
        while self._waiting and len(self._calls) < self._max_in_flight:
            waiters = [
                self._waiting.popleft() for _ in range(min(self._max_items, len(self._waiting)))
            ]
            call: _Call[T, R] = _Call(waiters, live=len(waiters))
            for waiter in waiters:
                waiter.call = call
            self._calls.add(call)
            call.task = asyncio.get_running_loop().create_task(
                self._run(call), context=self._context.copy()
            )
            # Not a `finally` in `_run`: a task cancelled before its first step never runs it.
            call.task.add_done_callback(functools.partial(self._finished, call))

    async def _run(self, call: _Call[T, R]) -> None:
        try:
            results = await self._send([w.item for w in call.waiters])
            if len(results) != len(call.waiters):
                raise ValueError(f"{len(results)} results for {len(call.waiters)} items")
        except Exception as error:
            for waiter in call.waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(error)
        else:
            for waiter, result in zip(call.waiters, results, strict=True):
                if not waiter.future.done():
                    waiter.future.set_result(result)

    def _finished(self, call: _Call[T, R], _task: asyncio.Task[None]) -> None:
        # Settled above unless the call was cancelled (all its callers gone, or the loop closing).
        for waiter in call.waiters:
            if not waiter.future.done():
                waiter.future.cancel()
            # A waiter and its call point at each other: undone here, both go by reference
            # counting, not by the garbage collector (8 objects a call otherwise, each one
            # pausing every socket of the process a little when it is collected).
            waiter.call = None
        call.task = None
        self._calls.discard(call)
        self._dispatch()

    def _forget(self, waiter: _Waiter[T, R]) -> None:
        """A caller gave up (its own timeout, or its task was cancelled)."""
        future = waiter.future
        if future.done() and not future.cancelled():
            # Settled just as it was cancelled: marked read, so asyncio does not log it.
            future.exception()
        call = waiter.call
        if call is None:
            # Still waiting, or its call has finished (and let go of it) already.
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            return
        call.live -= 1
        if call.live == 0 and call.task is not None:
            call.task.cancel()
