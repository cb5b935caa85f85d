"""The bounded queue in front of a model: who runs, who waits, who is refused."""

from __future__ import annotations

import asyncio

import pytest

from haven.errors import Busy
from models.llm.admission import AdmissionQueue


async def test_requests_beyond_running_and_queued_places_are_refused_at_once() -> None:
    queue = AdmissionQueue(concurrency=1, max_queued=2)
    places = [queue.admit() for _ in range(3)]

    with pytest.raises(Busy):
        queue.admit()

    places[0].release()
    queue.admit().release()
    assert queue.admitted == 2


async def test_waiting_requests_start_in_arrival_order_as_places_free_up() -> None:
    queue = AdmissionQueue(concurrency=1, max_queued=3)
    first = queue.admit()
    await first.start()
    order: list[int] = []

    async def run(index: int) -> None:
        place = queue.admit()
        await place.start()
        order.append(index)
        place.release()

    waiting = [asyncio.create_task(run(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    assert order == []
    assert queue.running == 1

    first.release()
    await asyncio.gather(*waiting)

    assert order == [0, 1, 2]
    assert (queue.running, queue.admitted) == (0, 0)


async def test_concurrency_allows_that_many_to_run_together() -> None:
    queue = AdmissionQueue(concurrency=2, max_queued=0)
    one, two = queue.admit(), queue.admit()
    await one.start()
    await two.start()

    assert queue.running == 2
    with pytest.raises(Busy):
        queue.admit()


async def test_a_waiter_cancelled_in_line_gives_up_its_place() -> None:
    queue = AdmissionQueue(concurrency=1, max_queued=1)
    running = queue.admit()
    await running.start()
    waiting = queue.admit()
    task = asyncio.create_task(waiting.start())
    await asyncio.sleep(0.01)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    waiting.release()
    running.release()

    assert (queue.running, queue.admitted) == (0, 0)
    again = queue.admit()
    await asyncio.wait_for(again.start(), timeout=1)
    assert again.running


async def test_release_is_idempotent_and_a_released_place_cannot_start() -> None:
    queue = AdmissionQueue(concurrency=1, max_queued=0)
    place = queue.admit()
    await place.start()

    place.release()
    place.release()

    assert (queue.running, queue.admitted) == (0, 0)
    with pytest.raises(RuntimeError):
        await place.start()
