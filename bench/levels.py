"""The whole response at each risk level, through real sockets, graded (`bench/level_grades.py`).

Each written message (`{"text", "level"}` per line) is sent as the first message of a new
session by one registered user on one socket, as a person would send it; the panel
(`safety_escalation`) and the reply (`assistant_message_complete`) are what is graded. Without
`--url` this starts Haven from serve_config.yaml on a local Ray cluster (`bench/local_haven.py`)
with the real models.

    .venv/bin/python bench/levels.py --data bench/data/levels_messages.jsonl \
        --out artifacts/levels/responses.jsonl

Prints one JSON summary: per level and overall, the calibrated, under- and over-response rates
and what was missing or present.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from contextlib import aclosing
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.level_grades import Response, grade, summarise  # noqa: E402
from bench.local_haven import local_haven, server_settings, temp_data_dir  # noqa: E402
from bench.turn_paths import SocketPath  # noqa: E402
from haven.crisis_resources import resources_for  # noqa: E402
from haven.protocol import EmergencyResources  # noqa: E402
from haven.settings import Settings  # noqa: E402


async def _seen(path: SocketPath, text: str) -> dict[str, Any]:
    """The panel (or None) and the reply's text that `text` got, in a new session."""
    panel: dict[str, Any] | None = None
    async with aclosing(path.events(text)) as events:
        async for event in events:
            if event.get("type") == "safety_escalation":
                panel = event
            elif event.get("type") == "assistant_message_complete":
                return {"panel": panel, "reply": event["message"]["text"]}
    raise RuntimeError("the socket's events ended before the reply completed")


async def run_messages(
    url: str, items: list[dict[str, Any]], timeout_s: float
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with SocketPath.connect(url, count_tokens=lambda text: len(text.split())) as path:
        for item in items:
            out.append({**item, **await asyncio.wait_for(_seen(path, item["text"]), timeout_s)})
    return out


def graded(
    results: list[dict[str, Any]], resources: EmergencyResources
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    grades = []
    for row in results:
        panel = row["panel"]
        # The panel's own resources are the person's region's; without one, the default region.
        shown = EmergencyResources(**panel["emergency_resources"]) if panel else resources
        g = grade(
            row["level"], Response(panel["risk_level"] if panel else None, row["reply"]), shown
        )
        grades.append(g)
        rows.append(
            {
                "text": row["text"],
                "level": row["level"],
                "panel": panel["risk_level"] if panel else None,
                "reply": row["reply"],
                "calibrated": g.calibrated,
                "missing": list(g.missing),
                "forbidden": list(g.forbidden),
            }
        )
    return rows, summarise(grades)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Haven's whole response at each risk level")
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "bench/data/levels_messages.jsonl")
    parser.add_argument("--out", type=Path, required=True, help="one graded response per line")
    parser.add_argument("--url", default=None, help="a running Haven instead of starting one")
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "serve_config.yaml")
    parser.add_argument("--cache-dir", type=Path, default=REPO_ROOT / ".cache" / "models")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per message")
    args = parser.parse_args(argv)

    lines = args.data.read_text(encoding="utf-8").splitlines()
    items = [json.loads(line) for line in lines if line.strip()][: args.limit]
    started = time.perf_counter()
    if args.url:
        results = asyncio.run(run_messages(args.url, items, args.timeout))
    else:
        with temp_data_dir() as data_dir:
            app_args = {"settings": server_settings(data_dir, args.cache_dir)}
            with local_haven(args.config, app_args) as haven:
                results = asyncio.run(run_messages(haven.url, items, args.timeout))
    resources = resources_for(None, Settings())
    rows, summary = graded(results, resources)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(json.dumps({**summary, "seconds": round(time.perf_counter() - started, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
