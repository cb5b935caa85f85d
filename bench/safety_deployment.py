"""Throughput and latency of the SafetyClassifier deployment, through the client Haven uses.

    python bench/safety_deployment.py                      # concurrency 1, 8, 32, 128
    python bench/safety_deployment.py --concurrency 1,32 --seconds 5 --rates 200,400

Starts a local Ray cluster and deploys the SafetyClassifier alone, with its options and its
deployment settings from serve_config.yaml (`args.safety`; replicas, `max_ongoing_requests`,
`ray_actor_options` with the replica's environment), without an HTTP proxy. Then, per
concurrency C and per client, C callers in this process each send `assess(message, [])`, one in
flight each, for `--seconds`. Clients (`--client`, both by default, taking turns at each level so
that the machine's load falls on both alike):

- `coalescing`: `deployments.clients.ServeRiskAssessor`, as a connection host uses it: at most
  `--in-flight` handle calls out, the messages that arrive meanwhile sent together in one
  `assess_many` call (up to `--turns-per-call`);
- `handle`: one `DeploymentHandle` call of `assess` per message, as before coalescing.

With `--rates`, also an offered rate per client (`bench/safety_load.py`): messages arrive at that
mean rate whatever the replies, latency from each one's planned arrival. Reported per level:
messages/s, p50/p99/max latency at the caller, the sizes of the batches the model ran and of the
`assess_many` calls (counted by a subclass around the replica's model call and `assess_many`;
the deployment's code is otherwise as shipped), and the CPU each process spent. One JSON line on
stdout.

Every message is classified alone (no earlier messages: one model pass per message; with context
the deployment runs two). The messages are `bench/safety_messages.py`'s.
"""

from __future__ import annotations

import argparse
import asyncio
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
from bench.safety_load import Send, callers, measured, offered  # noqa: E402
from bench.safety_messages import MESSAGES  # noqa: E402
from deployments.clients import ServeRiskAssessor  # noqa: E402
from deployments.safety import SafetyClassifier, SafetyOptions  # noqa: E402
from haven.risk import Assessment  # noqa: E402
from haven.settings import Settings  # noqa: E402

DEPLOYMENT = "SafetyClassifier"
WARMUP_CALLS = 64
CLIENTS = ("coalescing", "handle")


class CountingClassifier(SafetyClassifier.func_or_class):  # type: ignore[name-defined]
    """The SafetyClassifier, counting the size of every batch its model runs and of every
    `assess_many` call."""

    def __init__(self, options: SafetyOptions, *rest: Any) -> None:
        super().__init__(options, *rest)
        self._sizes: Counter[int] = Counter()
        self._calls: Counter[int] = Counter()
        model_assess = self._model.assess

        def counted(texts: Sequence[str]) -> Any:
            self._sizes[len(texts)] += 1
            return model_assess(texts)

        self._model.assess = counted

    async def assess_many(self, items: list[tuple[str, list[str], str | None]]) -> list[Assessment]:
        self._calls[len(items)] += 1
        result: list[Assessment] = await super().assess_many(items)
        return result

    async def take_counts(self) -> dict[str, dict[int, int]]:
        counts = {"batch_sizes": dict(self._sizes), "assess_many_calls": dict(self._calls)}
        self._sizes, self._calls = Counter(), Counter()
        return counts


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


def client(name: str, handle: Any, args: argparse.Namespace) -> Send:
    if name == "handle":
        return lambda text: handle.assess.remote(text, [])
    assessor = ServeRiskAssessor(
        handle, max_in_flight=args.in_flight, max_items=args.turns_per_call
    )
    return lambda text: assessor.assess(text, [])


async def measure(handle: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    # Untimed: the first calls allocate and pick kernels.
    for name in args.client:
        send = client(name, handle, args)
        await asyncio.gather(*(send(MESSAGES[i % len(MESSAGES)]) for i in range(WARMUP_CALLS)))
    results = []
    loads = [("concurrency", c) for c in args.concurrency] + [
        ("offered_per_s", r) for r in args.rates
    ]
    for kind, value in loads:
        for name in args.client:
            # A fresh client per level: nothing of one level's calls is left for the next.
            send = client(name, handle, args)
            if kind == "concurrency":
                run = callers(send, int(value), args.seconds)
            else:
                run = offered(send, float(value), args.seconds, args.timeout_s)
            level = {"client": name, kind: value} | await measured(handle, run)
            results.append(level)
            log(
                f"{name}, {kind} {value}: {level['messages_per_s']} messages/s, "
                f"p50 {level['p50_ms']} ms"
            )
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
        levels = asyncio.run(measure(handle, args))
    finally:
        serve.shutdown()
        ray.shutdown()
    return {
        "bench": "safety_deployment",
        "path": "clients in the driver -> SafetyClassifier replica (@serve.batch)",
        "clients": args.client,
        "coalescing": {"max_in_flight": args.in_flight, "turns_per_call": args.turns_per_call},
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
    parser.add_argument("--rates", default="", help="offered messages/s, comma-separated")
    parser.add_argument("--client", default=",".join(CLIENTS), help="coalescing and/or handle")
    fields = Settings.model_fields
    parser.add_argument("--in-flight", type=int, default=fields["safety_calls_in_flight"].default)
    parser.add_argument(
        "--turns-per-call", type=int, default=fields["safety_turns_per_call"].default
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=fields["safety_timeout_s"].default,
        help="offered rates: a message not answered within this long counts as timed out",
    )
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "serve_config.yaml")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    args.client = [c.strip() for c in args.client.split(",") if c.strip()]
    if not args.concurrency or min(args.concurrency) < 1 or args.seconds <= 0:
        parser.error("--concurrency levels and --seconds must be positive")
    if any(r <= 0 for r in args.rates) or min(args.in_flight, args.turns_per_call) < 1:
        parser.error("--rates, --in-flight and --turns-per-call must be positive")
    if not args.client or not set(args.client) <= set(CLIENTS):
        parser.error(f"--client: one or more of {', '.join(CLIENTS)}")
    print_json_line(lambda: run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
