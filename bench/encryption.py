"""Encryption at rest: the storage work of one turn with sealing on and off, in one run.

One turn's storage, as the ConnectionActor does it: the person's message stored, the history
read for the model (the last `context_messages` of the session), the reply stored, and the
turn's three logged frames appended to the event log. "Off" replaces the AES-GCM seal and open
with plain UTF-8 encoding in this process only (the key lookups, the per-user cache and every
SQL statement stay the same), so the difference is the cost of the cipher. The two modes run
in alternating rounds on one SQLite file (or `--database-url`), and CPU time is the whole
process's (`time.process_time`: the event loop and the database driver's thread).

    .venv/bin/python bench/encryption.py [--turns 400] [--rounds 6] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.json_line import print_json_line
from haven.storage import Store, crypto
from haven.storage.crypto import Sealer, new_key, row_identity
from haven.storage.events import LoggedEvent
from haven.storage.master_key import MasterKeys
from haven.storage.migrate import upgrade

USER_TEXT = (
    "I've been feeling really low for a few weeks now. Work is piling up, I can't sleep, "
    "and I keep snapping at the people I care about. I don't know how to get out of this."
)
REPLY_TEXT = (
    "That sounds exhausting, carrying all of that for weeks with so little sleep. It makes "
    "sense that you feel stretched thin. What has been weighing on you the most this week? "
    "Sometimes naming the heaviest part is a first step toward making it lighter."
)
HISTORY = 12  # the default context_messages


@contextmanager
def sealing(on: bool) -> Any:
    if on:
        yield
        return
    seal, open_ = Sealer.seal, Sealer.open_

    def plain_seal(self: Sealer, text: str, identity: bytes) -> bytes:
        return text.encode("utf-8")

    def plain_open(self: Sealer, sealed: bytes, identity: bytes, *, what: str) -> str:
        return bytes(sealed).decode("utf-8")

    Sealer.seal, Sealer.open_ = plain_seal, plain_open  # type: ignore[method-assign]
    try:
        yield
    finally:
        Sealer.seal, Sealer.open_ = seal, open_  # type: ignore[method-assign]


async def _turns(store: Store, user_id: str, session_id: str, turns: int, seq: list[int]) -> None:
    for _ in range(turns):
        stored = await store.add_message(user_id, session_id, "user", USER_TEXT)
        history = await store.list_messages(user_id, session_id, limit=HISTORY)
        assert history[-1].text == USER_TEXT
        reply = await store.add_message(
            user_id, session_id, "assistant", REPLY_TEXT, intent="validate", status="complete"
        )
        now = datetime.now(UTC)
        frames = [
            f'{{"type":"user_message","text":"{USER_TEXT}","message_id":"{stored.id}"}}',
            f'{{"type":"assistant_message_start","message_id":"{reply.id}"}}',
            f'{{"type":"assistant_message_complete","message":{{"text":"{REPLY_TEXT}"}}}}',
        ]
        events = []
        for frame in frames:
            seq[0] += 1
            events.append(LoggedEvent(seq[0], now, session_id, frame))
        await store.events.append(user_id, events)


async def _run(url: str, turns: int, rounds: int) -> dict[str, Any]:
    upgrade(url)
    results: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    async with Store.from_url(url, MasterKeys(new_key())) as store:
        user = await store.create_user(f"bench-{time.time_ns()}", "hash")
        # A session per mode: the history each reads was written in that mode.
        sessions = {mode: (await store.create_session(user.id)).id for mode in results}
        seq = [0]
        for mode in results:  # warm-up: the key, the pool, the statement caches
            with sealing(mode == "on"):
                await _turns(store, user.id, sessions[mode], 20, seq)
        for n in range(rounds * 2):
            mode = "on" if n % 2 == 0 else "off"
            with sealing(mode == "on"):
                cpu, wall = time.process_time(), time.perf_counter()
                await _turns(store, user.id, sessions[mode], turns, seq)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            results[mode].append((cpu / turns * 1e3, wall / turns * 1e3))
    summary: dict[str, Any] = {}
    for mode, runs in results.items():
        summary[mode] = {
            "cpu_ms_per_turn_median": round(statistics.median(c for c, _ in runs), 4),
            "wall_ms_per_turn_median": round(statistics.median(w for _, w in runs), 4),
            "cpu_ms_per_turn_each_round": [round(c, 4) for c, _ in runs],
        }
    on, off = summary["on"]["cpu_ms_per_turn_median"], summary["off"]["cpu_ms_per_turn_median"]
    summary["cpu_ratio_on_over_off"] = round(on / off, 4)
    summary["cpu_extra_percent"] = round((on / off - 1) * 100, 2)
    return summary


def _cipher_alone(count: int = 20_000) -> dict[str, float]:
    """The cipher without the database: µs to seal and to open one message of the sizes above."""
    sealer = Sealer(new_key())
    identity = row_identity("messages.text", "m", "u", "s", "user")
    start = time.process_time()
    sealed = [sealer.seal(USER_TEXT, identity) for _ in range(count)]
    seal_us = (time.process_time() - start) / count * 1e6
    start = time.process_time()
    for value in sealed:
        sealer.open_(value, identity, what="bench")
    open_us = (time.process_time() - start) / count * 1e6
    return {"seal_us": round(seal_us, 2), "open_us": round(open_us, 2), "chars": len(USER_TEXT)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=400, help="turns per round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per mode, alternating")
    parser.add_argument("--database-url", help="default: a throwaway SQLite file")
    args = parser.parse_args()

    def compute() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="haven-bench-enc-") as tmp:
            url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'haven.db'}"
            out = asyncio.run(_run(url, args.turns, args.rounds))
        out["cipher_alone"] = _cipher_alone()
        out["turns_per_round"], out["rounds_per_mode"] = args.turns, args.rounds
        out["nonce_and_tag_bytes"] = 1 + crypto.NONCE_BYTES + 16
        return out

    print_json_line(compute)


if __name__ == "__main__":
    main()
