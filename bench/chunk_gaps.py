"""Stream smoothness under load: the gap between consecutive reply chunks at people who chat,
with no idle sockets held and then with `--idle` sockets held, in one run.

    flock /tmp/haven-heavy.lock .venv/bin/python bench/chunk_gaps.py --idle 1000,5000

Haven runs serve_config.yaml on a local Ray cluster with a scripted OpenAI-compatible model
that streams `--pieces` pieces `--piece-s` apart (a steady 20 pieces a second by default), so
every gap the client sees above that spacing is Haven's: the Serve proxy, the Gateway replica
and the user's ConnectionActor in its host. `--chatters` people each send `--turns` everyday
messages one after another (the next once the reply is complete). The chat phase runs first with
no other socket open, then once per `--idle` count with that many authenticated idle sockets
held by client processes (five per account, Haven's per-user limit). Gaps are measured at the
chatting client, between arrivals of consecutive `assistant_message_chunk` frames of one reply.
Prints one JSON line on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import signal
import sys
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # the project, uninstalled

from bench.json_line import print_json_line  # noqa: E402
from bench.local_haven import local_haven, server_settings, temp_data_dir  # noqa: E402
from bench.socket_clients import raise_fd_limit  # noqa: E402
from bench.socket_pool import ClientPool  # noqa: E402
from bench.socket_servers import SOCKETS_PER_USER, _create_users  # noqa: E402
from bench.turn_paths import percentile  # noqa: E402

MESSAGES = (
    "I went for a walk in the park after work today.",
    "My sister is visiting this weekend and I am cooking dinner.",
    "Work was busy but fine, I finished the report.",
    "I have been reading a good book about the sea.",
)


def log(message: str) -> None:
    print(f"[chunk_gaps] {message}", file=sys.stderr, flush=True)


# --- the scripted model, in its own process ---------------------------------------------------


def _serve_steady_model(pipe: Pipe, pieces: int, piece_s: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us through the pipe
    from tests.openai_server import FakeOpenAIServer, Script

    words = [f"word{i} " for i in range(pieces)]
    with FakeOpenAIServer(Script(pieces=words, delay_s=piece_s)) as server:
        pipe.send(server.port)
        pipe.recv()


@contextlib.contextmanager
def steady_model(pieces: int, piece_s: float) -> Iterator[str]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(
        target=_serve_steady_model, args=(child, pieces, piece_s), daemon=True
    )
    process.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("the scripted model server did not start")
        yield f"http://127.0.0.1:{parent.recv()}/v1"
    finally:
        with contextlib.suppress(Exception):
            parent.send("stop")
        process.join(timeout=15)
        if process.is_alive():
            process.terminate()


# --- the people who chat ----------------------------------------------------------------------


async def _chat(
    ws_url: str, http_url: str, token: str, turns: int, timeout_s: float
) -> dict[str, Any]:
    import httpx
    import websockets

    async with httpx.AsyncClient(base_url=http_url, timeout=30) as http:
        created = await http.post("/sessions", headers={"Authorization": f"Bearer {token}"})
        created.raise_for_status()
        session_id = created.json()["id"]
    gaps: list[float] = []
    first_chunk: list[float] = []
    errors: list[str] = []
    async with websockets.connect(f"{ws_url}/ws?token={token}", max_size=2**20) as ws:
        for turn in range(turns):
            frame = {
                "type": "session_message",
                "session_id": session_id,
                "message_text": MESSAGES[turn % len(MESSAGES)],
            }
            sent = time.perf_counter()
            await ws.send(json.dumps(frame))
            last: float | None = None
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
                now = time.perf_counter()
                kind = event["type"]
                if kind == "assistant_message_chunk":
                    if last is None:
                        first_chunk.append(now - sent)
                    else:
                        gaps.append(now - last)
                    last = now
                elif kind == "assistant_message_complete":
                    break
                elif kind == "error":
                    errors.append(str(event.get("code")))
                    break
    return {"gaps": gaps, "first_chunk": first_chunk, "errors": errors}


def chat_phase(
    ws_url: str, http_url: str, tokens: list[str], turns: int, timeout_s: float
) -> dict[str, Any]:
    async def everyone() -> list[dict[str, Any]]:
        return list(
            await asyncio.gather(
                *(_chat(ws_url, http_url, token, turns, timeout_s) for token in tokens)
            )
        )

    started = time.perf_counter()
    runs = asyncio.run(everyone())
    gaps = sorted(g * 1000 for run in runs for g in run["gaps"])
    firsts = sorted(f * 1000 for run in runs for f in run["first_chunk"])
    return {
        "wall_s": round(time.perf_counter() - started, 1),
        "replies": len(firsts),
        "errors": [e for run in runs for e in run["errors"]],
        "gap_ms": {
            "n": len(gaps),
            "p50": round(percentile(gaps, 50), 1) if gaps else None,
            "p99": round(percentile(gaps, 99), 1) if gaps else None,
            "max": round(max(gaps, default=0.0), 1),
            "over_100ms": sum(g > 100 for g in gaps),
        },
        "first_chunk_ms": {
            "p50": round(percentile(firsts, 50), 1) if firsts else None,
            "max": round(max(firsts, default=0.0), 1),
        },
    }


# --- the run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    from haven.auth import TokenService

    idle_counts = [int(n) for n in args.idle.split(",") if n.strip()]
    most = max(idle_counts, default=0)
    idle_users = -(-most // SOCKETS_PER_USER)
    out: dict[str, Any] = {
        "bench": "chunk_gaps",
        "fd_limit": raise_fd_limit(),
        "model": {"pieces": args.pieces, "piece_s": args.piece_s, "backend": "openai (scripted)"},
        "chatters": args.chatters,
        "turns_each": args.turns,
        "phases": {},
    }
    pool = ClientPool(args.clients)
    try:
        with steady_model(args.pieces, args.piece_s) as model_url, temp_data_dir() as data_dir:
            settings = server_settings(data_dir, REPO_ROOT / ".cache" / "models")
            app_args: dict[str, dict[str, Any]] = {
                "settings": settings,
                "generator": {
                    "backend": "openai",
                    "planner": False,
                    "openai": {"base_url": model_url, "model": "scripted", "api_key_env": None},
                },
            }
            with local_haven(args.config, app_args) as haven:
                ids = asyncio.run(
                    _create_users(settings["database_url"], idle_users + args.chatters, "gap_")
                )
                tokens = TokenService(settings["jwt_secret"], ttl_s=3600)
                minted = [tokens.issue(user_id)[0] for user_id in ids]
                chatters, idle_tokens = minted[: args.chatters], minted[args.chatters :]
                ws_url = haven.url.replace("http://", "ws://")
                idle_urls = [
                    f"{ws_url}/ws?token={idle_tokens[i // SOCKETS_PER_USER]}" for i in range(most)
                ]
                # One warm-up reply each, so no phase pays for first calls.
                chat_phase(ws_url, haven.url, chatters, 1, args.timeout_s)
                held = 0
                for count in [0, *idle_counts]:
                    if count > held:
                        opened = pool.open("haven", idle_urls[held:count], args.rate, 120)
                        log(f"{opened['opened']} idle sockets opened, {opened['failed']} failed")
                        time.sleep(args.settle_s)
                        held = pool.status()["open"]
                    log(f"chatting with {held} idle sockets held")
                    phase = chat_phase(ws_url, haven.url, chatters, args.turns, args.timeout_s)
                    phase["idle_sockets_held"] = held
                    out["phases"][str(count)] = phase
                    log(f"{count}: {phase['gap_ms']}")
                pool.close()
    finally:
        pool.stop()
    base = out["phases"].get("0", {}).get("gap_ms", {})
    out["p99_gap_over_no_idle"] = {
        count: round(phase["gap_ms"]["p99"] / base["p99"], 2)
        for count, phase in out["phases"].items()
        if count != "0" and base.get("p99")
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", default="1000", help="comma-separated idle socket counts")
    parser.add_argument("--chatters", type=int, default=4)
    parser.add_argument("--turns", type=int, default=10, help="messages per chatter per phase")
    parser.add_argument("--pieces", type=int, default=40, help="chunks per scripted reply")
    parser.add_argument("--piece-s", type=float, default=0.05, help="between scripted chunks")
    parser.add_argument("--clients", type=int, default=2, help="client processes (idle sockets)")
    parser.add_argument("--rate", type=float, default=200.0, help="new idle sockets per second")
    parser.add_argument("--settle-s", type=float, default=5.0)
    parser.add_argument("--timeout-s", type=float, default=60.0)
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "serve_config.yaml")
    args = parser.parse_args(argv)
    print_json_line(lambda: run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
