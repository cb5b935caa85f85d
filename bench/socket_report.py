"""What `bench/sockets.py` reports: RTT quantiles, memory per socket, ratios and goals."""

from __future__ import annotations

import contextlib
import math
import os
import platform
from pathlib import Path
from typing import Any

KIB = 1024
MIB = 1024 * 1024
GOAL_SOCKETS = 5000
GOAL_MEMORY_RATIO = 2.0


def quantiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def pick(q: float) -> float:  # nearest rank
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 2)

    return {"n": len(ordered), "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": pick(1.0)}


def memory(before: dict[str, int], idle: dict[str, int], held: int) -> dict[str, Any]:
    growth = {key: idle.get(key, 0) - before.get(key, 0) for key in idle}
    out: dict[str, Any] = {
        "rss_mib_before": round(before["server"] / MIB, 1),
        "rss_mib_idle": round(idle["server"] / MIB, 1),
        "per_socket_kib": round(growth["server"] / max(held, 1) / KIB, 2),
    }
    if "ray_tree" in idle:
        out["ray_tree_rss_mib_before"] = round(before["ray_tree"] / MIB, 1)
        out["ray_tree_per_socket_kib"] = round(growth["ray_tree"] / max(held, 1) / KIB, 2)
        out["growth_mib_by_process"] = {
            key.removeprefix("ray_process:"): round(value / MIB, 1)
            for key, value in sorted(growth.items(), key=lambda kv: -abs(kv[1]))
            if key.startswith("ray_process:") and abs(value) >= MIB
        }
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def summary(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    haven, echo = results.get("haven"), results.get("uvicorn_echo")
    if haven and echo:
        out["haven_over_uvicorn"] = {
            "memory_per_socket": ratio(
                haven["memory"]["per_socket_kib"], echo["memory"]["per_socket_kib"]
            ),
            **{
                f"ping_{q}": ratio(
                    haven.get("ping", {}).get(f"{q}_ms"), echo.get("ping", {}).get(f"{q}_ms")
                )
                for q in ("p50", "p99")
            },
        }
    if haven:
        goals: dict[str, bool] = {
            f"haven holds >= {GOAL_SOCKETS} sockets": haven["open_at_end"] >= GOAL_SOCKETS
        }
        memory_ratio = out.get("haven_over_uvicorn", {}).get("memory_per_socket")
        if memory_ratio is not None:
            goals[f"haven memory per socket <= {GOAL_MEMORY_RATIO:g} x uvicorn echo"] = (
                memory_ratio <= GOAL_MEMORY_RATIO
            )
        out["goals_met"] = goals
    return out


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version()}
