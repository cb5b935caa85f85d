"""Measure how long one `IntentPlanner.plan` call takes on this machine.

    python -m models.intent.latency [--threads 1] [--conversations 40]

Replays ESConv valid conversations turn by turn, as the service would, and reports the median
and 90th percentile of one call in two regimes: "cold", with the embedding table emptied before
every call (all of the up to four turns are encoded), and "live", where the table persists across
the calls of a conversation (only the turns that are new since the last call are encoded).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

from models.intent import esconv
from models.intent.planner import IntentPlanner
from models.intent.train import DEFAULT_DATA


def _time_ms(planner: IntentPlanner, context: tuple[esconv.Turn, ...]) -> float:
    start = time.perf_counter()
    planner.plan(context)
    return (time.perf_counter() - start) * 1000


def measure(
    planner: IntentPlanner, contexts: list[list[tuple[esconv.Turn, ...]]]
) -> dict[str, object]:
    planner.plan([esconv.Turn("user", "warm up the encoder")])
    cold: list[float] = []
    live: list[float] = []
    for conversation in contexts:
        for context in conversation:
            planner.clear_cache()
            cold.append(_time_ms(planner, context))
        planner.clear_cache()
        live.extend(_time_ms(planner, context) for context in conversation)
    return {
        mode: {
            "calls": len(times),
            "median_ms": round(float(np.median(times)), 1),
            "p90_ms": round(float(np.percentile(times, 90)), 1),
        }
        for mode, times in (("cold", cold), ("live", live))
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--conversations", type=int, default=40)
    args = parser.parse_args(argv)
    planner = IntentPlanner.load(threads=args.threads)
    by_dialogue: dict[int, list[tuple[esconv.Turn, ...]]] = {}
    for example in esconv.load_split(args.data, "valid"):
        by_dialogue.setdefault(example.dialogue, []).append(example.context)
    contexts = list(by_dialogue.values())[: args.conversations]
    print(json.dumps({"threads": args.threads, **measure(planner, contexts)}))


if __name__ == "__main__":
    main()
