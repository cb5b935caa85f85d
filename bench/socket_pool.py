"""`bench/sockets.py`'s client processes, driven as one: each command goes to every worker
(`bench.socket_clients`), and their answers are added up."""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections import Counter
from multiprocessing.connection import Connection as Pipe
from typing import Any

from bench.socket_clients import worker_main


class ClientPool:
    """`workers` client processes; socket `g` of a server lives in worker `g % workers`."""

    def __init__(self, workers: int, offer_deflate: bool = True) -> None:
        self.offer_deflate = offer_deflate
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Pipe] = []
        self.processes: list[Any] = []
        for index in range(workers):
            parent, child = context.Pipe()
            process = context.Process(target=worker_main, args=(child, index, workers))
            process.daemon = True
            process.start()
            self._pipes.append(parent)
            self.processes.append(process)

    def _all(self, command: str, per_worker: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for pipe, kwargs in zip(self._pipes, per_worker, strict=True):
            pipe.send((command, kwargs))
        return [pipe.recv() for pipe in self._pipes]

    def open(
        self, kind: str, urls: list[str], rate_per_s: float, timeout_s: float
    ) -> dict[str, Any]:
        n = len(self._pipes)
        share = rate_per_s / n
        replies = self._all(
            "open",
            [
                {
                    "kind": kind,
                    "urls": urls[i::n],
                    "rate_per_s": share,
                    "timeout_s": timeout_s,
                    "offer_deflate": self.offer_deflate,
                }
                for i in range(n)
            ],
        )
        errors: Counter[str] = Counter()
        for reply in replies:
            errors.update(reply["errors"])
        return {
            "opened": sum(r["opened"] for r in replies),
            "failed": sum(r["failed"] for r in replies),
            "errors": dict(errors.most_common(5)),
            "open_s": max(r["open_s"] for r in replies),
            "deflate": sum(r["deflate"] for r in replies),
        }

    def ping(self, count: int, rounds: int, round_s: float) -> dict[str, Any]:
        start_wall = time.time() + 1.0
        kwargs = {"count": count, "rounds": rounds, "round_s": round_s, "start_wall": start_wall}
        replies = self._all("ping", [kwargs] * len(self._pipes))
        lost: Counter[str] = Counter()
        for reply in replies:
            lost.update(reply["lost"])
        return {
            "rtts_ms": [x for r in replies for x in r["rtts_ms"]],
            "slow_at_s": sorted(x for r in replies for x in r["slow_at_s"]),
            "lost": dict(lost),
            "started_at": start_wall,
        }

    def status(self) -> dict[str, Any]:
        replies = self._all("status", [{}] * len(self._pipes))
        closed: Counter[str] = Counter()
        for reply in replies:
            closed.update(reply["closed"])
        return {"open": sum(r["open"] for r in replies), "closed": dict(closed)}

    def close(self) -> int:
        return sum(r["closed"] for r in self._all("close", [{}] * len(self._pipes)))

    def stop(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(Exception):
                pipe.send(("stop", {}))
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
