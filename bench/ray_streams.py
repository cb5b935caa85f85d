"""What an open Ray streaming call costs, caller and callee, against one shared stream.

Before `actors.link`, a Gateway replica held one streaming call to a host per socket for the
socket's whole life. This opens `--streams` such calls from one async actor to another (each
yields once, then waits, as an idle socket's did) and reports the RSS growth of both processes
per call; then, in fresh actors, the same number of sockets registered over one stream.

    .venv/bin/python bench/ray_streams.py --streams 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import psutil
import ray


@ray.remote
class Callee:
    def __init__(self) -> None:
        self._release: asyncio.Event | None = None
        self._sockets: dict[int, list[str]] = {}

    def pid(self) -> int:
        return os.getpid()

    async def stream(self, index: int) -> Any:
        """One socket's own stream: its first (empty) batch, then nothing until released."""
        self._release = self._release or asyncio.Event()
        yield []
        await self._release.wait()

    async def shared(self) -> Any:
        """One stream for every socket."""
        self._release = self._release or asyncio.Event()
        yield []
        await self._release.wait()

    async def open(self, index: int) -> list[str]:
        self._sockets[index] = []
        return []


@ray.remote
class Caller:
    def __init__(self, callee: Any) -> None:
        self._callee = callee
        self._tasks: list[asyncio.Task[None]] = []

    def pid(self) -> int:
        return os.getpid()

    async def open_streams(self, count: int) -> int:
        started: list[int] = []

        async def one(index: int) -> None:
            stream: Any = self._callee.stream.options(num_returns="streaming").remote(index)
            async for ref in stream:
                await ref
                started.append(index)

        await self._open(count, one)
        while len(started) < count:  # noqa: ASYNC110 - polled once every 50 ms, a benchmark
            await asyncio.sleep(0.05)
        return len(started)

    async def open_shared(self, count: int) -> int:
        stream: Any = self._callee.shared.options(num_returns="streaming").remote()

        async def read() -> None:
            async for ref in stream:
                await ref

        self._tasks.append(asyncio.ensure_future(read()))
        opened: list[int] = []

        async def one(index: int) -> None:
            await self._callee.open.remote(index)
            opened.append(index)
            await asyncio.Event().wait()  # the socket's reader, waiting as an idle one does

        await self._open(count, one)
        while len(opened) < count:  # noqa: ASYNC110 - polled once every 50 ms, a benchmark
            await asyncio.sleep(0.05)
        return len(opened)

    async def _open(self, count: int, one: Any) -> None:
        for index in range(count):
            self._tasks.append(asyncio.ensure_future(one(index)))
            if index % 100 == 99:
                await asyncio.sleep(0.05)


def _rss_mib(pid: int) -> float:
    rss: float = psutil.Process(pid).memory_info().rss / 2**20
    return rss


def measure(mode: str, count: int, settle_s: float) -> dict[str, float]:
    callee = Callee.options(max_concurrency=100_000).remote()  # type: ignore[attr-defined]
    caller = Caller.options(max_concurrency=1_000).remote(callee)  # type: ignore[attr-defined]
    caller_pid, callee_pid = ray.get([caller.pid.remote(), callee.pid.remote()])
    time.sleep(settle_s)
    before = _rss_mib(caller_pid), _rss_mib(callee_pid)
    started = time.monotonic()
    method = caller.open_streams if mode == "stream_per_socket" else caller.open_shared
    opened = ray.get(method.remote(count))
    open_s = time.monotonic() - started
    time.sleep(settle_s)
    after = _rss_mib(caller_pid), _rss_mib(callee_pid)
    ray.kill(caller)
    ray.kill(callee)
    return {
        "opened": opened,
        "open_s": round(open_s, 2),
        "caller_kib_per_socket": round((after[0] - before[0]) * 1024 / count, 1),
        "callee_kib_per_socket": round((after[1] - before[1]) * 1024 / count, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--settle-s", type=float, default=3.0)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = {
            "bench": "ray_streams",
            "sockets": args.streams,
            "ray": ray.__version__,
            "stream_per_socket": measure("stream_per_socket", args.streams, args.settle_s),
            "one_shared_stream": measure("one_shared_stream", args.streams, args.settle_s),
        }
    finally:
        ray.shutdown()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
