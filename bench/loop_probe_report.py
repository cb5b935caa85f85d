"""Lines up the slow pings of `bench/sockets.py` with what `haven.loop_probe` saw per process.

    python bench/loop_probe_report.py PROBE_FILE   # a file written during a run: totals only

The probe file holds JSON lines from every process on the socket path: `summary` lines every
few seconds, and `lag` / `gc` events (a pause of 50 ms or more), each with its wall-clock end.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def _proc(record: dict[str, Any]) -> str:
    return f"{str(record.get('proc', '?')).removeprefix('ray::')}:{record.get('pid')}"


def totals(records: list[dict[str, Any]], since: float, until: float) -> dict[str, Any]:
    """Per process, between two wall-clock times: collections per generation (count, total and
    longest ms), the longest loop lag and how many lags were over 50 ms."""
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"lag_max_ms": 0.0, "lag_over_50ms": 0, "gc": {}}
    )
    for record in records:
        if record.get("event") != "summary" or not since <= record["t"] <= until + 6:
            continue
        mine = out[_proc(record)]
        mine["lag_max_ms"] = max(mine["lag_max_ms"], record["lag_max_ms"])
        mine["lag_over_50ms"] += record["lag_over_50ms"]
        for gen, (count, total, top) in record["gc"].items():
            seen = mine["gc"].setdefault(f"gen{gen}", [0, 0.0, 0.0])
            seen[0] += count
            seen[1] = round(seen[1] + total, 1)
            seen[2] = max(seen[2], top)
        mine["gc_frozen"] = record.get("gc_frozen", 0)
    return dict(sorted(out.items()))


def pauses_near(
    records: list[dict[str, Any]], started_at: float, slow_at_s: list[float]
) -> dict[str, list[str]]:
    """For each whole second of the ping phase with a slow ping: the pauses (lag or gc of
    50 ms or more, any process) that overlap it or the second before it, as
    "process event ms @ seconds-into-the-phase"."""
    seconds = sorted({int(s) for s in slow_at_s})
    events = [r for r in records if r.get("event") in {"lag", "gc"}]
    found: dict[str, list[str]] = {}
    for second in seconds:
        lo, hi = started_at + second - 1.0, started_at + second + 1.0
        near = []
        for event in events:
            begun = event["t"] - event["ms"] / 1000
            if begun <= hi and event["t"] >= lo:
                where = round(begun - started_at, 2)
                gen = f" gen{event['gen']}" if event["event"] == "gc" else ""
                near.append(f"{_proc(event)} {event['event']}{gen} {event['ms']} ms @ {where} s")
        found[str(second)] = near
    return found


if __name__ == "__main__":
    data = read(Path(sys.argv[1]))
    print(json.dumps(totals(data, 0.0, float("inf")), indent=1))
