"""Throughput of the SafetyClassifier deployment: C concurrent callers through its handle.

    python bench/safety_deployment.py                      # concurrency 1, 8, 32, 128
    python bench/safety_deployment.py --concurrency 1,32 --seconds 5

Starts a local Ray cluster and deploys the SafetyClassifier alone, with its options and its
deployment settings from serve_config.yaml (`args.safety`; replicas, `max_ongoing_requests`,
`ray_actor_options` with the replica's environment), without an HTTP proxy. Then, per
concurrency C, C callers in this process each send `assess(message, [])` through a
`DeploymentHandle`, one call in flight each, for `--seconds`: Serve's `@serve.batch` gathers
concurrent calls into one model call. Reported per C: messages/s, p50/p99/max latency per call
at the caller, and the sizes of the batches the model ran (counted by a subclass that wraps the
replica's model call; the deployment's code is otherwise as shipped). One JSON line on stdout.

Every message is classified alone (no earlier messages: one model pass per call; with context
the deployment runs two). The messages are `bench/safety_messages.py`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # the project, uninstalled

from bench.json_line import print_json_line  # noqa: E402
from bench.process_stats import cpu_seconds, cpu_used  # noqa: E402
from bench.safety_messages import MESSAGES  # noqa: E402
from deployments.safety import SafetyClassifier, SafetyOptions  # noqa: E402

DEPLOYMENT = "SafetyClassifier"
WARMUP_CALLS = 64


class CountingClassifier(SafetyClassifier.func_or_class):  # type: ignore[name-defined]
    """The SafetyClassifier, counting the size of every batch its model runs."""

    def __init__(self, options: SafetyOptions) -> None:
        super().__init__(options)
        self._sizes: Counter[int] = Counter()
        model_assess = self._model.assess

        def counted(texts: Sequence[str]) -> Any:
            self._sizes[len(texts)] += 1
            return model_assess(texts)

        self._model.assess = counted

    async def take_batch_sizes(self) -> dict[int, int]:
        sizes, self._sizes = dict(self._sizes), Counter()
        return sizes


def deployment_settings(config_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the `safety` args, the SafetyClassifier's deployment options) from the config."""
    from deployments.launch import load_config

    app = load_config(config_path).applications[0]
    options: dict[str, Any] = {}
    for deployment in app.deployments:
        if deployment.name == DEPLOYMENT:
            options = deployment.model_dump(exclude_unset=True)
            options.pop("name")
    return dict(app.args.get("safety", {})), options


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 2)


async def one_level(handle: Any, concurrency: int, seconds: float) -> dict[str, Any]:
    latencies_ms: list[float] = []
    await handle.take_batch_sizes.remote()
    cpu_before = cpu_seconds(set(), None)
    started = time.perf_counter()
    stop_at = started + seconds

    async def caller(first: int) -> None:
        index = first
        while time.perf_counter() < stop_at:
            text = MESSAGES[index % len(MESSAGES)]
            index += concurrency
            sent = time.perf_counter()
            await handle.assess.remote(text, [])
            latencies_ms.append((time.perf_counter() - sent) * 1000)

    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = cpu_used(cpu_before, cpu_seconds(set(), None), max(len(latencies_ms), 1))
    sizes: dict[int, int] = await handle.take_batch_sizes.remote()
    batches = sum(sizes.values())
    return {
        "concurrency": concurrency,
        "messages": len(latencies_ms),
        "messages_per_s": round(len(latencies_ms) / elapsed, 1),
        "p50_ms": nearest_rank(latencies_ms, 0.5),
        "p99_ms": nearest_rank(latencies_ms, 0.99),
        "max_ms": round(max(latencies_ms), 2),
        "model_batches": batches,
        "batch_size_mean": round(sum(k * v for k, v in sizes.items()) / batches, 1)
        if batches
        else None,
        "batch_size_max": max(sizes) if sizes else None,
        # Where the two cores went: the callers (this process), the replica, Ray's own.
        "cpu_ms_per_message": cpu["ms_per_turn"],
        "cpu_s_by_process": cpu["by_process_s"],
    }


async def measure(handle: Any, levels: list[int], seconds: float) -> list[dict[str, Any]]:
    # Untimed: the first calls allocate and pick kernels.
    await asyncio.gather(
        *(handle.assess.remote(MESSAGES[i % len(MESSAGES)], []) for i in range(WARMUP_CALLS))
    )
    results = []
    for concurrency in levels:
        results.append(await one_level(handle, concurrency, seconds))
        log(f"concurrency {concurrency}: {results[-1]['messages_per_s']} messages/s")
    return results


def log(message: str) -> None:
    print(f"[safety {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import ray
    from ray import serve
    from ray.serve._private.constants import SERVE_NAMESPACE

    safety_args, options = deployment_settings(args.config)
    ray.init(address="local", namespace=SERVE_NAMESPACE, include_dashboard=False)
    try:
        serve.start(proxy_location="Disabled")
        started = time.perf_counter()
        counting: Any = serve.deployment(CountingClassifier, name=DEPLOYMENT)
        deployment = counting.options(**options)
        app = deployment.bind(SafetyOptions.model_validate(safety_args))
        handle = serve.run(app, name="safety", route_prefix=None)
        startup_s = time.perf_counter() - started
        log(f"SafetyClassifier ready in {startup_s:.1f} s")
        levels = asyncio.run(measure(handle, args.concurrency, args.seconds))
    finally:
        serve.shutdown()
        ray.shutdown()
    return {
        "bench": "safety_deployment",
        "path": "DeploymentHandle from the driver -> SafetyClassifier replica (@serve.batch)",
        "safety": safety_args,
        "deployment": options,
        "seconds_per_level": args.seconds,
        "context_messages": 0,
        "startup_s": round(startup_s, 1),
        "levels": levels,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,8,32,128", help="comma-separated levels")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per level")
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "serve_config.yaml")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if not args.concurrency or min(args.concurrency) < 1 or args.seconds <= 0:
        parser.error("--concurrency levels and --seconds must be positive")
    print_json_line(lambda: run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
