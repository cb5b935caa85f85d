"""Time to first token and tokens/s of one reply: the model in-process, through the Serve
deployment handle, and as a client sees it over the WebSocket, in one run on the same prompts.

    python bench/turn_latency.py --prompts 8                      # starts Haven itself
    python bench/turn_latency.py --prompts 8 --url http://127.0.0.1:3000   # a running Haven
    python bench/turn_latency.py --prompts 8 --inprocess-only
    python bench/turn_latency.py --users 1,4,8,16                 # people at once on sockets

Without `--url` it deploys serve_config.yaml on a local Ray cluster in this process (a throwaway
database, rate limits lifted) and times three paths per prompt, in an order that rotates from
prompt to prompt; with `--url` the handle is out of reach and it times the socket and the model.
Generation settings (max_new_tokens, threads, sampling) come from the config's `generator:`
block for every path, as do the replica's environment variables (OMP_WAIT_POLICY), which this
process takes too. With `--users` it times the model in-process as the reference, then the socket
path with each number of people sending turns at once, then one five-turn conversation
(`bench/turn_users.py`), and checks the goals of continuous batching. Prints one JSON
line; see bench/README.md. The timed paths are in `bench/turn_paths.py`, the local Haven in
`bench/local_haven.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project, uninstalled

from bench.json_line import print_json_line
from bench.local_haven import (
    apply_env,
    generator_env,
    local_haven,
    server_settings,
    temp_data_dir,
)
from bench.turn_paths import (
    HandlePath,
    InProcessPath,
    SocketPath,
    TurnPath,
    measure,
    ratio,
    summarise,
)
from bench.turn_users import conversation, goals, user_levels
from deployments.launch import load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("bench.turn_latency")

PROMPTS: tuple[str, ...] = (
    "I feel anxious about my exam tomorrow.",
    "Work has been overwhelming and I can't switch off in the evenings.",
    "My best friend hasn't replied to me in days and I don't know why.",
    "I keep waking up at 4am and can't get back to sleep.",
    "I had an argument with my sister and I feel guilty.",
    "I moved to a new city and I feel lonely most evenings.",
    "I procrastinate all day and then feel bad about myself.",
    "How can I calm down before a job interview?",
    "Everything feels a bit flat lately, nothing is really fun.",
    "I get nervous speaking up in meetings.",
)
# Warm-up turns use prompts of their own, so that no timed prompt finds caches warmed for it.
WARMUP_PROMPTS: tuple[str, ...] = (
    "Hi, I just wanted to talk to someone for a minute.",
    "I had a long day and I'm tired.",
)
TURN_TIMEOUT_S = 180.0
# The goals for the socket, relative to the model in-process.
GOAL_TOKENS_PER_S_RATIO = 0.9
GOAL_TTFT_EXTRA_MS = 30.0


def cycle(prompts: tuple[str, ...], n: int) -> list[str]:
    return [prompts[i % len(prompts)] for i in range(n)]


def load_service(generator_args: dict[str, Any], settings_args: dict[str, Any]) -> Any:
    """A `ReplyService` built as the ResponseGenerator replica builds its own."""
    # Imported here: torch must start after apply_env() has set OMP_WAIT_POLICY.
    from deployments.generator import GeneratorOptions, build_service
    from haven.settings import Settings

    return build_service(GeneratorOptions.model_validate(generator_args), Settings(**settings_args))


def report(timings: dict[str, list[Any]]) -> dict[str, Any]:
    summaries = {name: summarise(values) for name, values in timings.items()}
    local = summaries["inprocess"]
    result: dict[str, Any] = dict(summaries)
    for name in ("handle", "socket"):
        if name not in summaries:
            continue
        result[f"ratio_{name}_over_inprocess"] = {
            "ttft": ratio(summaries[name], local, "ttft_ms_p50"),
            "tokens_per_s": ratio(summaries[name], local, "tokens_per_s_p50"),
        }
        result[f"{name}_ttft_minus_inprocess_ms"] = round(
            summaries[name]["ttft_ms_p50"] - local["ttft_ms_p50"], 1
        )
    if "socket" in summaries:
        rate = result["ratio_socket_over_inprocess"]["tokens_per_s"]
        extra = result["socket_ttft_minus_inprocess_ms"]
        result["goals_met"] = {
            f"socket_tokens_per_s >= {GOAL_TOKENS_PER_S_RATIO} x inprocess": rate is not None
            and rate >= GOAL_TOKENS_PER_S_RATIO,
            f"socket_ttft <= inprocess + {GOAL_TTFT_EXTRA_MS:.0f} ms": extra <= GOAL_TTFT_EXTRA_MS,
        }
    return result


async def run_paths(
    args: argparse.Namespace,
    service: Any,
    url: str | None,
    app_name: str | None,
) -> dict[str, list[Any]]:
    count_tokens = service.backend.count_tokens
    paths: list[TurnPath] = [InProcessPath(service, count_tokens)]
    async with AsyncExitStack() as stack:
        if app_name is not None:
            from ray import serve

            from deployments.clients import ServeReplyGenerator

            handle = serve.get_deployment_handle("ResponseGenerator", app_name=app_name)
            paths.append(HandlePath(ServeReplyGenerator(handle), count_tokens))
        if url is not None:
            paths.append(await stack.enter_async_context(SocketPath.connect(url, count_tokens)))
        return await measure(
            paths,
            cycle(PROMPTS, args.prompts),
            cycle(WARMUP_PROMPTS, args.warmup),
            TURN_TIMEOUT_S,
        )


async def run_users(args: argparse.Namespace, service: Any, url: str) -> dict[str, Any]:
    """The model in-process alone (the reference), then the socket path per number of people."""
    count_tokens = service.backend.count_tokens
    timings = await measure(
        [InProcessPath(service, count_tokens)],
        cycle(PROMPTS, args.prompts),
        cycle(WARMUP_PROMPTS, args.warmup),
        TURN_TIMEOUT_S,
    )
    reference = summarise(timings["inprocess"])
    async with SocketPath.connect(url, count_tokens) as path:
        for prompt in cycle(WARMUP_PROMPTS, args.warmup):  # untimed, as for the other paths
            await asyncio.wait_for(path.turn(prompt), TURN_TIMEOUT_S)
    levels = await user_levels(
        url,
        count_tokens,
        args.users,
        list(PROMPTS),
        args.prompts_per_user,
        TURN_TIMEOUT_S,
        reference,
    )
    talk = await conversation(url, count_tokens, TURN_TIMEOUT_S)
    return {
        "inprocess": reference,
        "users": levels,
        "conversation": talk,
        "goals_met": goals(levels, reference, talk),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.max_new_tokens is not None:
        overrides["max_new_tokens"] = args.max_new_tokens
    if args.threads is not None:
        overrides["threads"] = args.threads
    local_mode = args.url is None and not args.inprocess_only
    with temp_data_dir() as data_dir:
        settings_args = server_settings(data_dir, args.cache_dir) if local_mode else {}
        app_args = {"settings": settings_args, "generator": overrides}
        config = load_config(args.config, args=app_args)
        generator_args = config.applications[0].args.get("generator", {})
        env = apply_env(generator_env(config))
        started = time.perf_counter()
        service = load_service(
            generator_args,
            {"model_cache_dir": args.cache_dir, **config.applications[0].args["settings"]},
        )
        load_s = time.perf_counter() - started
        try:
            if args.users and local_mode:
                with local_haven(args.config, app_args, port=args.port) as haven:
                    measured = asyncio.run(run_users(args, service, haven.url))
            elif args.users:
                measured = asyncio.run(run_users(args, service, args.url))
            elif local_mode:
                with local_haven(args.config, app_args, port=args.port) as haven:
                    timings = asyncio.run(run_paths(args, service, haven.url, haven.app_name))
                measured = report(timings)
            else:
                url = None if args.inprocess_only else args.url
                measured = report(asyncio.run(run_paths(args, service, url, None)))
        finally:
            service.backend.close()
    params = service.params
    mode = "local" if local_mode else ("inprocess-only" if args.inprocess_only else "url")
    return {
        "mode": f"{mode}, users" if args.users else mode,
        "prompts": args.prompts,
        "warmup": args.warmup,
        "model": getattr(service.backend, "name", ""),
        "max_new_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "threads": generator_args.get("threads"),
        "env": env,
        "inprocess_load_s": round(load_s, 2),
        **measured,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Haven turn latency: model, handle, socket")
    parser.add_argument(
        "--prompts", type=int, default=None, help="timed turns per path (8; with --users: 3)"
    )
    parser.add_argument(
        "--users", default=None, help="comma-separated numbers of people at once, e.g. 1,4,16"
    )
    parser.add_argument("--prompts-per-user", type=int, default=2, help="turns per person")
    parser.add_argument("--url", default=None, help="time a running Haven instead of starting one")
    parser.add_argument("--inprocess-only", action="store_true", help="the model alone")
    parser.add_argument("--warmup", type=int, default=1, help="untimed turns first, per path")
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "serve_config.yaml")
    parser.add_argument("--port", type=int, default=None, help="local Haven's port (free one)")
    parser.add_argument("--cache-dir", type=Path, default=REPO_ROOT / ".cache" / "models")
    parser.add_argument("--threads", type=int, default=None, help="overrides the config's")
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help="overrides the config's (every path)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every turn")
    args = parser.parse_args(argv)
    if args.prompts is None:
        args.prompts = 3 if args.users else 8
    if args.users is not None:
        args.users = [int(n) for n in args.users.split(",") if n.strip()]
        if not args.users or min(args.users) < 1 or args.inprocess_only:
            parser.error("--users needs positive numbers and the socket path")
    if args.prompts < 1 or args.prompts_per_user < 1:
        parser.error("--prompts and --prompts-per-user must be at least 1")
    if args.url is not None and args.inprocess_only:
        parser.error("--url and --inprocess-only exclude each other")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    print_json_line(lambda: run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
