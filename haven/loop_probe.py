"""An opt-in probe of what pauses a process's event loop: loop lag and garbage collections.

Off unless `HAVEN_LOOP_PROBE` names a file (read here only). Each process on the socket path
(the Serve proxy, the Gateway replica, the ConnectionHosts) then appends JSON lines to it: a
summary every `SUMMARY_S` seconds (loop lag, collections per generation and their time, the
collector's object counts) and one line for each pause over `EVENT_MS` (`lag` or `gc`), with
the wall-clock time, so a benchmark can line them up with its slow requests
(`bench/sockets.py --loop-probe`). A 10 ms sleep on the loop costs ~100 wake-ups a second.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from typing import Any

ENV = "HAVEN_LOOP_PROBE"
# With the probe on, `HAVEN_LOOP_PROBE_TRACEMALLOC=1` also traces allocations (slow: for
# memory runs only) and writes, every `SITES_S`, the sites that grew most since the first.
TRACEMALLOC_ENV = "HAVEN_LOOP_PROBE_TRACEMALLOC"
SITES_S = 10.0
SITES = 25
TICK_S = 0.01
SUMMARY_S = 5.0
EVENT_MS = 50.0

_started_loops: set[int] = set()
_gc_hooked = False


class _Window:
    """What happened since the last summary line."""

    def __init__(self) -> None:
        self.lag_max_ms = 0.0
        self.lag_over_event = 0
        self.ticks = 0
        self.gc: dict[int, list[float]] = {}  # generation -> [count, total ms, max ms]


_window = _Window()
_gc_started = 0.0


def _write(path: str, record: dict[str, Any]) -> None:
    record = {"t": round(time.time(), 3), "pid": os.getpid(), "proc": _title(), **record}
    # One short line per write with O_APPEND: lines from several processes do not interleave.
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def _title() -> str:
    """The process's title as `ps` shows it: Ray sets "ray::ConnectionHost.link" and such."""
    try:
        with open("/proc/self/cmdline", "rb") as cmdline:
            name = cmdline.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        name = sys.argv[0]
    if not name.startswith("ray::"):
        import multiprocessing

        # A benchmark's client processes: "SpawnProcess-1" and so on.
        return multiprocessing.current_process().name
    return name.split(" ")[0].split(".")[0]


def _on_gc(path: str, phase: str, info: dict[str, Any]) -> None:
    global _gc_started
    if phase == "start":
        _gc_started = time.perf_counter()
        return
    ms = (time.perf_counter() - _gc_started) * 1000
    generation = int(info.get("generation", -1))
    stats = _window.gc.setdefault(generation, [0, 0.0, 0.0])
    stats[0] += 1
    stats[1] += ms
    stats[2] = max(stats[2], ms)
    if ms >= EVENT_MS:
        # Written after the collection, not inside it: no allocation-heavy work in the callback.
        asyncio_loop = _running_loop()
        event = {"t": round(time.time(), 3), "event": "gc", "ms": round(ms, 1), "gen": generation}
        if asyncio_loop is not None:
            asyncio_loop.call_soon(_write, path, event)
        else:  # a thread without a loop (Ray's, Serve's own): after the collection all the same
            _write(path, event)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _sample(path: str) -> None:
    global _window
    loop = asyncio.get_running_loop()
    last_summary = loop.time()
    last_cpu = time.process_time()
    while True:
        before = loop.time()
        await asyncio.sleep(TICK_S)
        now = loop.time()
        lag_ms = (now - before - TICK_S) * 1000
        _window.ticks += 1
        _window.lag_max_ms = max(_window.lag_max_ms, lag_ms)
        if lag_ms >= EVENT_MS:
            _window.lag_over_event += 1
            _write(path, {"event": "lag", "ms": round(lag_ms, 1)})
        if now - last_summary >= SUMMARY_S:
            # The whole process's CPU (Ray's threads too), as a share of one core.
            cpu = time.process_time()
            cpu_pct = round((cpu - last_cpu) / (now - last_summary) * 100)
            last_summary, last_cpu = now, cpu
            window, _window = _window, _Window()
            _write(
                path,
                {
                    "event": "summary",
                    "lag_max_ms": round(window.lag_max_ms, 1),
                    "lag_over_50ms": window.lag_over_event,
                    "ticks": window.ticks,
                    "cpu_pct": cpu_pct,
                    "gc": {
                        str(gen): [int(c), round(total, 1), round(top, 1)]
                        for gen, (c, total, top) in sorted(window.gc.items())
                    },
                    "gc_counts": list(gc.get_count()),
                    "gc_frozen": gc.get_freeze_count(),
                    "gc_threshold": list(gc.get_threshold()),
                },
            )


async def _sites(path: str) -> None:
    """Growth by allocation site (file:line) against the first snapshot, in KiB and blocks."""
    import tracemalloc

    await asyncio.sleep(SITES_S)
    first = tracemalloc.take_snapshot()
    while True:
        await asyncio.sleep(SITES_S)
        grown = tracemalloc.take_snapshot().compare_to(first, "lineno")
        top = []
        for diff in grown[:SITES]:
            site = f"{diff.traceback[0].filename}:{diff.traceback[0].lineno}"
            top.append([site, diff.size_diff // 1024, diff.count_diff])
        traced, _ = tracemalloc.get_traced_memory()
        _write(path, {"event": "sites", "traced_kib": traced // 1024, "top": top})


def start() -> None:
    """Starts the probe on the running loop if `HAVEN_LOOP_PROBE` is set; once per loop."""
    global _gc_hooked
    path = os.environ.get(ENV)
    loop = _running_loop()
    if not path or loop is None or id(loop) in _started_loops:
        return
    _started_loops.add(id(loop))
    if not _gc_hooked:
        _gc_hooked = True
        gc.callbacks.append(lambda phase, info: _on_gc(path, phase, info))
    _tasks.add(loop.create_task(_sample(path)))
    if os.environ.get(TRACEMALLOC_ENV) == "1":
        import tracemalloc

        tracemalloc.start()
        _tasks.add(loop.create_task(_sites(path)))


_tasks: set[asyncio.Task[None]] = set()
