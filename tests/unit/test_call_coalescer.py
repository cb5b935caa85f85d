"""CallCoalescer: concurrent items share calls, each caller gets its own result or its call's
error, and a caller that gives up breaks nobody else's."""

from __future__ import annotations

import asyncio
import contextvars
import gc
from collections.abc import Sequence

import pytest

from haven.call_coalescer import CallCoalescer

tag: contextvars.ContextVar[str | None] = contextvars.ContextVar("tag", default=None)


class Remote:
    """A fake remote side: each call waits until the test lets it return (or fail)."""

    def __init__(self, auto: bool = False) -> None:
        self.calls: list[list[int]] = []
        self.gates: list[asyncio.Future[None]] = []
        self.cancelled: list[list[int]] = []
        self.tags: list[str | None] = []
        self.auto = auto

    async def send(self, items: list[int]) -> Sequence[str]:
        self.calls.append(list(items))
        self.tags.append(tag.get())
        gate = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        if self.auto:
            gate.set_result(None)
        try:
            await gate
        except asyncio.CancelledError:
            self.cancelled.append(list(items))
            raise
        return [f"r{i}" for i in items]

    def release(self, index: int, error: Exception | None = None) -> None:
        if error is None:
            self.gates[index].set_result(None)
        else:
            self.gates[index].set_exception(error)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_one_caller_is_sent_at_once_alone() -> None:
    remote = Remote(auto=True)
    calls = CallCoalescer(remote.send, max_in_flight=2, max_items=64)
    assert await calls.submit(7) == "r7"
    assert remote.calls == [[7]]
    await settle()
    assert (calls.in_flight, calls.waiting) == (0, 0)


async def test_items_arriving_while_the_slots_are_taken_go_together_when_one_frees() -> None:
    remote = Remote()
    calls = CallCoalescer(remote.send, max_in_flight=2, max_items=64)
    tasks = [asyncio.ensure_future(calls.submit(i)) for i in range(10)]
    await settle()
    # The first two went at once, one each; the other eight wait for a free slot.
    assert remote.calls == [[0], [1]]
    assert (calls.in_flight, calls.waiting) == (2, 8)
    remote.release(0)
    await settle()
    assert remote.calls == [[0], [1], [2, 3, 4, 5, 6, 7, 8, 9]]
    remote.release(1)
    remote.release(2)
    # Each caller gets the result of its own item, whichever call carried it.
    assert await asyncio.gather(*tasks) == [f"r{i}" for i in range(10)]
    assert (calls.in_flight, calls.waiting) == (0, 0)


async def test_bounds_on_calls_in_flight_and_items_per_call_hold() -> None:
    remote = Remote()
    calls = CallCoalescer(remote.send, max_in_flight=1, max_items=3)
    tasks = [asyncio.ensure_future(calls.submit(i)) for i in range(8)]
    await settle()
    for index in range(4):
        assert calls.in_flight == 1 and len(remote.gates) == index + 1
        remote.release(index)
        await settle()
    assert remote.calls == [[0], [1, 2, 3], [4, 5, 6], [7]]
    assert await asyncio.gather(*tasks) == [f"r{i}" for i in range(8)]


async def test_a_failed_call_fails_its_own_callers_only() -> None:
    remote = Remote()
    calls = CallCoalescer(remote.send, max_in_flight=2, max_items=64)
    first = asyncio.ensure_future(calls.submit(0))
    second = asyncio.ensure_future(calls.submit(1))
    waiting = [asyncio.ensure_future(calls.submit(i)) for i in (2, 3)]
    await settle()
    error = RuntimeError("replica gone")
    remote.release(0, error)
    await settle()
    assert remote.calls[2] == [2, 3]
    remote.release(2, error)
    remote.release(1)
    for task in (first, *waiting):
        with pytest.raises(RuntimeError) as raised:
            await task
        assert raised.value is error
    assert await second == "r1"
    # The coalescer goes on after a failure.
    remote.auto = True
    assert await calls.submit(4) == "r4"


async def test_results_in_the_wrong_number_fail_that_call() -> None:
    async def short(items: list[int]) -> list[str]:
        return ["only one"]

    calls: CallCoalescer[int, str] = CallCoalescer(short, max_in_flight=1)
    tasks = [asyncio.ensure_future(calls.submit(i)) for i in range(3)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == "only one"
    assert all(isinstance(r, ValueError) for r in results[1:])


async def test_a_caller_that_gives_up_while_waiting_leaves_the_queue() -> None:
    remote = Remote()
    calls = CallCoalescer(remote.send, max_in_flight=1, max_items=64)
    first = asyncio.ensure_future(calls.submit(0))
    gone = asyncio.ensure_future(asyncio.wait_for(calls.submit(1), timeout=0.01))
    stays = asyncio.ensure_future(calls.submit(2))
    with pytest.raises(TimeoutError):
        await gone
    assert calls.waiting == 1
    remote.release(0)
    await settle()
    assert remote.calls == [[0], [2]]
    remote.release(1)
    assert await asyncio.gather(first, stays) == ["r0", "r2"]


async def test_a_caller_that_gives_up_while_sent_leaves_its_call_to_the_others() -> None:
    remote = Remote()
    calls = CallCoalescer(remote.send, max_in_flight=1, max_items=64)
    first = asyncio.ensure_future(calls.submit(0))
    await settle()
    gone = asyncio.ensure_future(calls.submit(1))
    stays = asyncio.ensure_future(calls.submit(2))
    await settle()
    remote.release(0)
    await settle()
    assert remote.calls[1] == [1, 2]
    gone.cancel()
    await settle()
    assert remote.cancelled == []  # another caller still waits on that call
    remote.release(1)
    assert await asyncio.gather(first, stays) == ["r0", "r2"]
    assert gone.cancelled()


async def test_a_call_whose_callers_all_gave_up_is_cancelled_and_frees_its_slot() -> None:
    remote = Remote()
    calls = CallCoalescer(remote.send, max_in_flight=1, max_items=64)
    hung = [asyncio.ensure_future(calls.submit(i)) for i in range(2)]
    await settle()
    for task in hung:
        task.cancel()
    await settle()
    # The first call was cancelled in the remote side; the second item never went out.
    assert remote.cancelled == [[0]]
    assert (calls.in_flight, calls.waiting) == (0, 0)
    remote.auto = True
    assert await calls.submit(5) == "r5"
    assert remote.calls == [[0], [5]]


async def test_a_call_cancelled_before_it_started_frees_its_slot() -> None:
    remote = Remote(auto=True)
    calls = CallCoalescer(remote.send, max_in_flight=1, max_items=64)
    # Stepped by hand so that the caller gives up in the same step as it submitted, before
    # the call's task has run at all.
    submitting = calls.submit(0)
    submitting.send(None)
    assert calls.in_flight == 1
    with pytest.raises(asyncio.CancelledError):
        submitting.throw(asyncio.CancelledError())
    await settle()
    assert remote.calls == [] and calls.in_flight == 0
    assert await calls.submit(1) == "r1"


async def test_a_call_runs_in_the_coalescers_context_not_a_callers() -> None:
    remote = Remote(auto=True)
    calls = CallCoalescer(remote.send)

    async def as_turn(name: str, item: int) -> str:
        tag.set(name)
        return await calls.submit(item)

    assert await asyncio.gather(as_turn("a", 0), as_turn("b", 1)) == ["r0", "r1"]
    assert remote.tags == [None, None]


async def test_finished_calls_leave_nothing_for_the_garbage_collector() -> None:
    """Each cycle a call left behind would wait for a collection, and a collection pauses
    every socket of the process (docs/benchmarks.md)."""

    async def send(items: list[int]) -> list[int]:
        await asyncio.sleep(0)
        return items

    calls = CallCoalescer(send)
    for item in range(10):  # first use: the event loop's own lazily built objects
        await calls.submit(item)
    gc.collect()
    gc.disable()
    try:
        results = await asyncio.gather(*(calls.submit(item) for item in range(200)))
        for item in range(200):
            await calls.submit(item)
        await asyncio.sleep(0)
        assert gc.collect() == 0
    finally:
        gc.enable()
    assert results == list(range(200))


def test_bounds_must_be_positive() -> None:
    async def send(items: list[int]) -> list[int]:
        return items

    with pytest.raises(ValueError):
        CallCoalescer(send, max_in_flight=0)
    with pytest.raises(ValueError):
        CallCoalescer(send, max_items=0)
