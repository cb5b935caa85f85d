"""The loads `safety_deployment.py` puts on the classifier, and what it reports of each.

Closed loop (`callers`): C callers, each with one message in flight, sending the next as soon as
the last is answered. Its latency is tied to its throughput by Little's law (p50 ~ C / messages
per second), so it measures how much the deployment can take, not how fast one message goes at a
given load. Offered rate (`offered`): messages arrive at a fixed mean rate (Poisson, seeded)
whether or not earlier ones were answered, and latency runs from each message's planned arrival,
so a sender that falls behind is counted against the deployment: that is the latency a person
sees at that load.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.process_stats import cpu_seconds, cpu_used
from bench.safety_messages import MESSAGES

Send = Callable[[str], Awaitable[object]]


def nearest_rank(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 2)


async def callers(send: Send, concurrency: int, seconds: float) -> dict[str, Any]:
    """Latencies (ms) and elapsed seconds of `concurrency` closed-loop callers."""
    latencies_ms: list[float] = []
    started = time.perf_counter()
    stop_at = started + seconds

    async def caller(first: int) -> None:
        index = first
        while time.perf_counter() < stop_at:
            text = MESSAGES[index % len(MESSAGES)]
            index += concurrency
            sent = time.perf_counter()
            await send(text)
            latencies_ms.append((time.perf_counter() - sent) * 1000)

    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    return {"latencies_ms": latencies_ms, "elapsed_s": time.perf_counter() - started}


async def offered(send: Send, rate: float, seconds: float, timeout_s: float) -> dict[str, Any]:
    """Messages at `rate` per second for `seconds`, each given up after `timeout_s` as a turn
    gives up on the classifier (`safety_timeout_s`): latencies of those answered in time."""
    rng = random.Random(0)
    latencies_ms: list[float] = []
    tasks: set[asyncio.Task[None]] = set()
    most_outstanding = timed_out = 0
    started = last_answer = time.perf_counter()

    async def one(text: str, planned: float) -> None:
        nonlocal timed_out, last_answer
        try:
            await asyncio.wait_for(send(text), timeout_s - (time.perf_counter() - planned))
        except TimeoutError:
            timed_out += 1
            return
        last_answer = time.perf_counter()
        latencies_ms.append((last_answer - planned) * 1000)

    planned, index = started, 0
    while True:
        planned += rng.expovariate(rate)
        if planned >= started + seconds:
            break
        await asyncio.sleep(max(0.0, planned - time.perf_counter()))
        task = asyncio.ensure_future(one(MESSAGES[index % len(MESSAGES)], planned))
        index += 1
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        most_outstanding = max(most_outstanding, len(tasks))
    await asyncio.gather(*tasks)
    return {
        "latencies_ms": latencies_ms,
        # Until the last answer: a deployment that falls behind answers after the window.
        "elapsed_s": max(last_answer - started, seconds),
        "sent": index,
        "timed_out": timed_out,
        "most_outstanding": most_outstanding,
    }


async def measured(replica: Any, run: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """`run`'s latencies as the report's fields, with the replica's batches and calls and the
    CPU each process spent meanwhile."""
    await replica.take_counts.remote()
    cpu_before = cpu_seconds(set(), None)
    result = await run
    latencies_ms: list[float] = result.pop("latencies_ms")
    elapsed: float = result.pop("elapsed_s")
    cpu = cpu_used(cpu_before, cpu_seconds(set(), None), max(len(latencies_ms), 1))
    counts: dict[str, dict[int, int]] = await replica.take_counts.remote()
    sizes, calls = counts["batch_sizes"], counts["assess_many_calls"]
    batches = sum(sizes.values())
    many = sum(calls.values())
    return {
        "messages": len(latencies_ms),
        "messages_per_s": round(len(latencies_ms) / elapsed, 1),
        "p50_ms": nearest_rank(latencies_ms, 0.5),
        "p99_ms": nearest_rank(latencies_ms, 0.99),
        "max_ms": round(max(latencies_ms), 2) if latencies_ms else None,
        "model_batches": batches,
        "batch_size_mean": round(sum(k * v for k, v in sizes.items()) / batches, 1)
        if batches
        else None,
        "batch_size_max": max(sizes) if sizes else None,
        # Calls of assess_many (the coalescing client's); the handle client calls assess, once
        # per message.
        "assess_many_calls": many,
        "turns_per_call_mean": round(sum(k * v for k, v in calls.items()) / many, 1)
        if many
        else None,
        "turns_per_call_max": max(calls) if calls else None,
        # Where the two cores went: the callers (this process), the replica, Ray's own.
        "cpu_ms_per_message": cpu["ms_per_turn"],
        "cpu_s_by_process": cpu["by_process_s"],
    } | result
