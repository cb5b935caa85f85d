"""`bench/turn_latency.py --users 1,4,16`: the socket path with several people at once.

Each simulated person registers an account of their own, opens one socket and sends their turns
one after another (the next once the previous reply is complete), every person at the same
time. Each turn is a one-message conversation in a fresh session, so every prompt is the same
one the in-process reference times. Timings are what each client sees (`SocketPath`): time to
first chunk from the accepted send, tokens/s of its reply.

The local model decodes every reply in flight in one batch (`models.llm.batcher`): people who
write at once share its passes; past `generator.max_batch_size` running and
`generator.max_queued` waiting replies a turn is refused with `busy`; the client counts it,
waits `BUSY_RETRY_S` and sends the same prompt again
in a new session, as a client following the error's `retryable` would. `wait_ms` runs from the
first attempt to the first chunk, retries included.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from bench.turn_paths import (
    CountTokens,
    ServerBusy,
    SocketPath,
    TurnTiming,
    percentile,
    ratio,
    summarise,
)

logger = logging.getLogger("bench.turn_latency")

BUSY_RETRY_S = 2.0


@dataclass
class UserRun:
    timings: list[TurnTiming] = field(default_factory=list)
    waits_s: list[float] = field(default_factory=list)  # first attempt -> first chunk
    busy: int = 0


async def _one_user(
    path: SocketPath, prompts: list[str], start: asyncio.Event, timeout_s: float
) -> UserRun:
    run = UserRun()
    await start.wait()
    for prompt in prompts:
        first_attempt = time.perf_counter()
        while True:
            attempt = time.perf_counter()
            try:
                timing = await asyncio.wait_for(path.turn(prompt), timeout_s)
            except ServerBusy:
                run.busy += 1
                await asyncio.sleep(BUSY_RETRY_S)
                continue
            run.timings.append(timing)
            run.waits_s.append(attempt - first_attempt + timing.ttft_s)
            break
    return run


async def concurrent_users(
    url: str,
    count_tokens: CountTokens,
    users: int,
    prompts: list[str],
    per_user: int,
    timeout_s: float,
) -> dict[str, Any]:
    """`users` people at once, `per_user` turns each; person u starts at prompt u."""
    async with AsyncExitStack() as stack:
        paths = [
            await stack.enter_async_context(SocketPath.connect(url, count_tokens))
            for _ in range(users)
        ]
        start = asyncio.Event()
        tasks = [
            asyncio.create_task(
                _one_user(
                    path,
                    [prompts[(u + i) % len(prompts)] for i in range(per_user)],
                    start,
                    timeout_s,
                )
            )
            for u, path in enumerate(paths)
        ]
        started = time.perf_counter()
        start.set()
        runs = await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    timings = [t for r in runs for t in r.timings]
    waits_ms = [w * 1000 for r in runs for w in r.waits_s]
    summary = summarise(timings)
    return {
        **summary,
        "users": users,
        "turns_per_user": per_user,
        "busy": sum(r.busy for r in runs),
        "wait_ms_p50": round(percentile(waits_ms, 50), 1) if waits_ms else None,
        "wait_ms_p90": round(percentile(waits_ms, 90), 1) if waits_ms else None,
        "wait_ms_max": round(max(waits_ms), 1) if waits_ms else None,
        "elapsed_s": round(elapsed, 1),
        # The slowest person's reply rate: every person's reply must stay readable.
        "tokens_per_s_min": round(min(t.tokens_per_s for t in timings), 2) if timings else None,
        # All clients together: how much of the model's rate the people share.
        "aggregate_tokens_per_s": round(sum(t.tokens for t in timings) / elapsed, 2),
    }


# Turns of the one-conversation run: the first chunk of the last against the first.
CONVERSATION_TURNS = 5
CONVERSATION: tuple[str, ...] = (
    "I've had a rough week at work and I'm exhausted.",
    "My manager keeps adding deadlines and I can't say no.",
    "When I get home I just sit there and can't relax.",
    "I used to enjoy going for a run before work.",
    "Maybe I should try to start again this weekend.",
)


async def conversation(url: str, count_tokens: CountTokens, timeout_s: float) -> dict[str, Any]:
    """One person, one session, `CONVERSATION_TURNS` turns: does turn 5 start as fast as turn 1?"""
    async with SocketPath.connect(url, count_tokens) as path:
        session_id = await path.new_session()
        timings = [
            await asyncio.wait_for(path.turn(text, session_id), timeout_s)
            for text in CONVERSATION[:CONVERSATION_TURNS]
        ]
    ttft_ms = [round(t.ttft_s * 1000, 1) for t in timings]
    return {
        "turns": len(timings),
        "ttft_ms_by_turn": ttft_ms,
        "last_over_first_ttft": round(ttft_ms[-1] / ttft_ms[0], 3) if ttft_ms[0] else None,
    }


def goals(
    levels: dict[str, Any], reference: dict[str, Any], talk: dict[str, Any]
) -> dict[str, Any]:
    """The concurrency goals, each True or False; a goal whose level was not run is left out."""
    one, eight, sixteen = levels.get("1"), levels.get("8"), levels.get("16")
    met: dict[str, Any] = {}
    if eight:
        met["8 users: first chunk p50 <= 2 s"] = eight["wait_ms_p50"] <= 2000
        met["8 users: first chunk max <= 4 s"] = eight["wait_ms_max"] <= 4000
        met["8 users: every person >= 12 tokens/s"] = eight["tokens_per_s_min"] >= 12
    if sixteen:
        met["16 users: no busy"] = sixteen["busy"] == 0
        met["16 users: first chunk p50 <= 4 s"] = sixteen["wait_ms_p50"] <= 4000
        if one:
            met["16 users: aggregate >= 6 x one person"] = (
                sixteen["aggregate_tokens_per_s"] >= 6 * one["tokens_per_s_p50"]
            )
    if one:
        met["1 user: tokens/s >= 0.9 x in-process"] = (
            one["tokens_per_s_p50"] >= 0.9 * reference["tokens_per_s_p50"]
        )
        met["1 user: first chunk <= in-process + 30 ms"] = (
            one["ttft_ms_p50"] <= reference["ttft_ms_p50"] + 30
        )
    if talk.get("last_over_first_ttft") is not None:
        met["turn 5 first chunk <= 1.3 x turn 1"] = talk["last_over_first_ttft"] <= 1.3
    return met


async def user_levels(
    url: str,
    count_tokens: CountTokens,
    levels: list[int],
    prompts: list[str],
    per_user: int,
    timeout_s: float,
    reference: dict[str, Any],
) -> dict[str, Any]:
    """One result per level (in the order given), each with its ratio to `reference`."""
    results: dict[str, Any] = {}
    for users in levels:
        result = await concurrent_users(url, count_tokens, users, prompts, per_user, timeout_s)
        result["ratio_over_inprocess"] = {
            "ttft": ratio(result, reference, "ttft_ms_p50"),
            "tokens_per_s": ratio(result, reference, "tokens_per_s_p50"),
        }
        logger.warning(
            "%d users: first chunk p50 %s ms, %s tokens/s, %d busy",
            users,
            result.get("ttft_ms_p50"),
            result.get("tokens_per_s_p50"),
            result["busy"],
        )
        results[str(users)] = result
    return results
