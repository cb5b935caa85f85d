"""Turn latency as a client sees it through a running Haven, next to the bare model in-process.

    python bench/turn_latency.py --prompts 8 --url http://127.0.0.1:3000
    python bench/turn_latency.py --prompts 8 --inprocess-only

Prints one JSON line: p50 time to first token and tokens/s for both paths, and their ratios
(server / in-process). Tokens are counted with the model's tokenizer on the complete reply text
in both cases, so the two rates are comparable whatever the server's chunking.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    # Lets `python bench/turn_latency.py` import the project without installing it.
    sys.path.insert(0, str(REPO_ROOT))

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
TURN_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class TurnTiming:
    ttft_s: float
    total_s: float
    tokens: int
    chunks: int

    @property
    def tokens_per_s(self) -> float:
        # The first token's latency is counted in ttft; the rate covers the rest of the reply.
        streaming_s = self.total_s - self.ttft_s
        return (self.tokens - 1) / streaming_s if self.tokens > 1 and streaming_s > 0 else 0.0


def pick_prompts(n: int) -> list[str]:
    return [PROMPTS[i % len(PROMPTS)] for i in range(n)]


def summarise(timings: Sequence[TurnTiming]) -> dict[str, Any]:
    if not timings:
        return {"turns": 0}
    return {
        "turns": len(timings),
        "ttft_ms_p50": round(statistics.median(t.ttft_s for t in timings) * 1000, 1),
        "tokens_per_s_p50": round(statistics.median(t.tokens_per_s for t in timings), 2),
        "reply_tokens_p50": statistics.median(t.tokens for t in timings),
        "chunks_p50": statistics.median(t.chunks for t in timings),
        "total_s_p50": round(statistics.median(t.total_s for t in timings), 3),
    }


async def measure_server(
    url: str, prompts: Sequence[str], warmup: int, count_tokens: Any
) -> list[TurnTiming]:
    import httpx
    from websockets.asyncio.client import connect

    username = f"bench-{secrets.token_hex(6)}"
    password = secrets.token_urlsafe(18)
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
        response = await http.post(
            "/auth/register", json={"username": username, "password": password}
        )
        if response.status_code != 201:
            raise RuntimeError(f"register: {response.status_code} {response.text}")
        response = await http.post("/auth/login", json={"username": username, "password": password})
        response.raise_for_status()
        token = response.json()["access_token"]

        async def new_session() -> str:
            # A fresh session per prompt: the server then builds the same one-turn prompt as
            # the in-process run, instead of a history that grows turn by turn.
            created = await http.post("/sessions", headers={"Authorization": f"Bearer {token}"})
            created.raise_for_status()
            session_id: str = created.json()["id"]
            return session_id

        parts = urlsplit(url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        timings: list[TurnTiming] = []
        async with connect(f"{scheme}://{parts.netloc}/ws?token={token}", max_size=None) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
            if first.get("type") != "connection":
                raise RuntimeError(f"expected a connection event, got {first}")
            for i, prompt in enumerate([*pick_prompts(warmup), *prompts]):
                session_id = await new_session()
                timing = await asyncio.wait_for(
                    _server_turn(ws, session_id, prompt, count_tokens), TURN_TIMEOUT_S
                )
                if i >= warmup:
                    timings.append(timing)
                logger.info("server turn %d: %s", i, timing)
    return timings


async def _server_turn(ws: Any, session_id: str, prompt: str, count_tokens: Any) -> TurnTiming:
    frame = {"type": "session_message", "session_id": session_id, "message_text": prompt}
    sent = time.perf_counter()
    await ws.send(json.dumps(frame))
    ttft: float | None = None
    chunks = 0
    while True:
        event = json.loads(await ws.recv())
        kind = event.get("type")
        if kind == "assistant_message_chunk":
            chunks += 1
            if ttft is None:
                ttft = time.perf_counter() - sent
        elif kind == "assistant_message_complete":
            total = time.perf_counter() - sent
            text = event["message"]["text"]
            return TurnTiming(
                ttft_s=ttft if ttft is not None else total,
                total_s=total,
                tokens=count_tokens(text),
                chunks=chunks,
            )
        elif kind == "error":
            raise RuntimeError(f"server error: {event}")
        elif kind == "safety_escalation":
            logger.warning("prompt %r was escalated; its reply is timed anyway", prompt)


async def measure_inprocess(
    backend: Any, prompts: Sequence[str], warmup: int, max_new_tokens: int | None
) -> list[TurnTiming]:
    from models.llm.generation import GenerationParams
    from models.llm.prompt import ChatTurn, build_messages

    params = (
        GenerationParams()
        if max_new_tokens is None
        else GenerationParams(max_new_tokens=max_new_tokens)
    )
    timings: list[TurnTiming] = []
    for i, prompt in enumerate([*pick_prompts(warmup), *prompts]):
        started = time.perf_counter()
        messages = build_messages(
            [ChatTurn("user", prompt)],
            intent="validate",
            risk_level="none",
            tokenizer=backend.tokenizer,
            max_prompt_tokens=1536,
        )
        ttft: float | None = None
        pieces: list[str] = []
        async for delta in backend.stream(messages, params):
            if ttft is None:
                ttft = time.perf_counter() - started
            pieces.append(delta)
        total = time.perf_counter() - started
        timing = TurnTiming(
            ttft_s=ttft if ttft is not None else total,
            total_s=total,
            tokens=backend.count_tokens("".join(pieces)),
            chunks=len(pieces),
        )
        if i >= warmup:
            timings.append(timing)
        logger.info("in-process turn %d: %s", i, timing)
    return timings


def _ratio(server: dict[str, Any], local: dict[str, Any], key: str) -> float | None:
    if key not in server or key not in local or not local[key]:
        return None
    return round(server[key] / local[key], 3)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from models.llm.generation import TransformersBackend
    from models.llm.prepare import ensure_model

    started = time.perf_counter()
    backend = TransformersBackend.load(ensure_model(args.cache_dir), threads=args.threads)
    load_s = time.perf_counter() - started
    prompts = pick_prompts(args.prompts)
    try:
        server: dict[str, Any] | None = None
        if not args.inprocess_only:
            # The server goes first, while this process's model sits idle and takes no CPU.
            server = summarise(
                await measure_server(args.url, prompts, args.warmup, backend.count_tokens)
            )
        local = summarise(
            await measure_inprocess(backend, prompts, args.warmup, args.max_new_tokens)
        )
    finally:
        backend.close()
    result: dict[str, Any] = {
        "prompts": args.prompts,
        "model": backend.name,
        "inprocess_load_s": round(load_s, 2),
        "server": server,
        "inprocess": local,
    }
    if server is not None:
        result["ratio_server_over_inprocess"] = {
            "ttft": _ratio(server, local, "ttft_ms_p50"),
            "tokens_per_s": _ratio(server, local, "tokens_per_s_p50"),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Haven turn latency: server vs in-process model")
    parser.add_argument("--prompts", type=int, default=8, help="timed turns per path")
    parser.add_argument("--url", default="http://127.0.0.1:3000", help="a running Haven")
    parser.add_argument("--inprocess-only", action="store_true", help="skip the server")
    parser.add_argument("--warmup", type=int, default=1, help="untimed turns first, per path")
    parser.add_argument("--cache-dir", type=Path, default=REPO_ROOT / ".cache" / "models")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in-process")
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help="in-process bound (default: 160)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every turn")
    args = parser.parse_args(argv)
    if args.prompts < 1:
        parser.error("--prompts must be at least 1")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    result = asyncio.run(run(args))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
