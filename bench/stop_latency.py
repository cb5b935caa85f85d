"""How long closing a reply's stream takes to stop the local model.

`OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/stop_latency.py [--runs 20] [--threads 1]`

Two cases, each `--runs` times, with the prepared model (`make setup`): a reply being written
(closed after its third piece) and a long prompt being read (closed after its first prompt
chunk). Times run from `aclose` (or the cancel) to its return, which is when the worker has
finished its pass under way and dropped the reply. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from models.llm.backend import GenerationParams
from models.llm.generation import TransformersBackend
from models.llm.prepare import DEFAULT_CACHE_DIR, model_dir
from models.llm.prompt import ChatTurn, build_messages

LONG_REQUEST = (
    "Please tell me a very long and detailed story about a lighthouse keeper and the sea."
)
LONG_PROMPT = "I keep going over the same worries every night. " * 60


def chat(backend: TransformersBackend, text: str) -> list[dict[str, str]]:
    return build_messages(
        [ChatTurn("user", text)],
        intent="validate",
        risk_level="none",
        tokenizer=backend.tokenizer,
        max_prompt_tokens=1024,
    )


async def stop_while_writing(backend: TransformersBackend, seed: int) -> float:
    stream = backend.stream(
        chat(backend, LONG_REQUEST), GenerationParams(max_new_tokens=400, seed=seed)
    )
    for _ in range(3):
        await anext(stream)
    started = time.perf_counter()
    await stream.aclose()
    return time.perf_counter() - started


async def stop_while_reading(backend: TransformersBackend, seed: int) -> float:
    stream = backend.stream(
        chat(backend, LONG_PROMPT), GenerationParams(max_new_tokens=50, seed=seed)
    )
    first = asyncio.create_task(anext(stream))
    await asyncio.sleep(0.05)  # the first prompt chunk is being read
    started = time.perf_counter()
    first.cancel()
    try:
        await first
    except (asyncio.CancelledError, StopAsyncIteration):
        pass
    await stream.aclose()
    return time.perf_counter() - started


def summary(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    return {
        "p50_ms": round(statistics.median(ms), 1),
        "max_ms": round(ms[-1], 1),
        "mean_ms": round(statistics.fmean(ms), 1),
    }


async def run(runs: int, threads: int) -> dict[str, object]:
    backend = TransformersBackend.load(model_dir(DEFAULT_CACHE_DIR), threads=threads)
    try:
        writing = [await stop_while_writing(backend, seed) for seed in range(runs)]
        reading = [await stop_while_reading(backend, seed) for seed in range(runs)]
    finally:
        backend.close()
    return {
        "bench": "stop_latency",
        "runs": runs,
        "threads": threads,
        "writing": summary(writing),
        "reading_long_prompt": summary(reading),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args.runs, args.threads))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
