"""Throughput of the crisis-risk classifier in-process: latency per single message and
messages per second in batches, through the same path the deployment uses (model + rules).

    .venv/bin/python bench/safety_throughput.py --threads 2

Prints one JSON line. Options: --threads, --singles (timed single messages), --batches,
--batch-size, --head-path, --device, --model default|cascade (cascade: MiniLM, then mpnet for the
messages near a crisis, as served; needs `make setup`'s prepared mpnet folder).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

# Run as a script from the repository root or anywhere else.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import torch

from bench.safety_messages import MESSAGES
from models.safety.cascade import CascadeModel
from models.safety.loading import load_risk_model
from models.safety.pipeline import assess_conversations


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--singles", type=int, default=300)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--head-path", type=pathlib.Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", choices=("default", "cascade"), default="default")
    parser.add_argument("--model-cache", type=pathlib.Path, default=pathlib.Path(".cache/models"))
    args = parser.parse_args()

    started = time.perf_counter()
    model = load_risk_model(
        args.model,
        head_path=args.head_path,
        device=args.device,
        threads=args.threads,
        model_cache_dir=args.model_cache,
    )
    load_s = time.perf_counter() - started
    items: list[tuple[str, list[str]]] = [(m, []) for m in MESSAGES]
    assess_conversations(model, items)  # warm-up: first calls allocate and pick kernels

    latencies: list[float] = []
    for i in range(args.singles):
        item = items[i % len(items)]
        t0 = time.perf_counter()
        assess_conversations(model, [item])
        latencies.append((time.perf_counter() - t0) * 1000)

    batch = [items[i % len(items)] for i in range(args.batch_size)]
    t0 = time.perf_counter()
    for _ in range(args.batches):
        assess_conversations(model, batch)
    batched_s = time.perf_counter() - t0

    result = {
        "bench": "safety_throughput",
        "model": f"{model.model_id}@{model.model_version}",
        "device": args.device,
        "threads": torch.get_num_threads(),
        "load_s": round(load_s, 2),
        "single_p50_ms": round(statistics.median(latencies), 2),
        "single_p99_ms": round(_percentile(latencies, 0.99), 2),
        "batched_messages_per_s": round(args.batches * args.batch_size / batched_s, 1),
        "batch_size": args.batch_size,
        "mean_chars": round(sum(len(m) for m in MESSAGES) / len(MESSAGES), 1),
    }
    if isinstance(model, CascadeModel):
        result["cascade_reread_fraction"] = round(model.reread_fraction, 4)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
