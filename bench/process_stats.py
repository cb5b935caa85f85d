"""What the processes of a local Ray session use: RSS and CPU time per process, and the errors
in its workers' logs, for benchmarks that measure Haven as a whole."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
KIB = 1024


def ray_processes(exclude: set[int]) -> list[Any]:
    """Every process this driver started for the Ray session (GCS, raylet, workers, proxy,
    replicas, hosts), found as its descendants; `exclude` (and their children) left out."""
    import psutil

    me = psutil.Process()
    found = []
    for child in me.children(recursive=True):
        try:
            lineage = {child.pid, *(p.pid for p in child.parents())}
        except psutil.Error:
            continue
        if not lineage & exclude:
            found.append(child)
    return found


def _title(process: Any) -> str:
    """A process's Ray title (`ray::ServeReplica:haven:Gateway`, `ray::ConnectionHost`...)."""
    try:
        cmdline = process.cmdline()
        name = cmdline[0] if cmdline else process.name()
    except Exception:
        return "?"
    if name.startswith("ray::"):
        # Without the method running now: "ray::ConnectionHost.link" is "ray::ConnectionHost".
        return name.split(" ")[0].split(".")[0]
    return Path(name).name


def sample_rss(exclude: set[int]) -> dict[str, Any]:
    """Summed RSS of the Ray session's processes, and per process title."""
    import psutil

    by_title: dict[str, int] = defaultdict(int)
    total = 0
    count = 0
    for process in ray_processes(exclude):
        try:
            rss = process.memory_info().rss
        except psutil.Error:
            continue
        total += rss
        count += 1
        by_title[_title(process)] += rss
    return {"total": total, "processes": count, "by_title": dict(by_title)}


def cpu_seconds(exclude: set[int], model_pid: int | None) -> dict[str, float]:
    """CPU seconds (user + system) so far per Ray process title, this client and the model."""
    import psutil

    def used(process: Any) -> float:
        times = process.cpu_times()
        return float(times.user + times.system)

    by_title: dict[str, float] = defaultdict(float)
    for process in ray_processes(exclude):
        with contextlib.suppress(psutil.Error):
            by_title[_title(process)] += used(process)
    by_title["(benchmark client)"] = used(psutil.Process())
    if model_pid is not None:
        with contextlib.suppress(psutil.Error):
            by_title["(scripted model)"] = used(psutil.Process(model_pid))
    return dict(by_title)


def cpu_used(before: dict[str, float], after: dict[str, float], turns: int) -> dict[str, Any]:
    spent = {t: after.get(t, 0.0) - before.get(t, 0.0) for t in set(before) | set(after)}
    return {
        "total_s": round(sum(spent.values()), 1),
        "ms_per_turn": round(sum(spent.values()) / turns * 1000, 1),
        "by_process_s": {
            t: round(v, 1) for t, v in sorted(spent.items(), key=lambda kv: -kv[1]) if v >= 0.5
        },
    }


# Lines worth counting in the Ray workers' logs: Haven's own error reports, and the proxy's.
LOG_PATTERNS = {
    "tracebacks": "Traceback (most recent call last)",
    "turn_failed": "turn failed for user",
    "could_not_persist_events": "could not persist events",
    "could_not_reserve_event_numbers": "could not reserve event numbers",
    "sqlite_database_is_locked": "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) "
    "database is locked",
    "proxy_request_failed": "Request failed due to unexpected error",
}


def scan_logs(logs_dir: Path | None) -> dict[str, int] | None:
    """How often each of `LOG_PATTERNS` occurs in the session's worker logs (errors a client
    may never see, such as a failed write-behind of the replay log)."""
    if logs_dir is None or not logs_dir.is_dir():
        return None
    counts = dict.fromkeys(LOG_PATTERNS, 0)
    for path in logs_dir.glob("worker-*.err"):
        with contextlib.suppress(OSError), path.open(errors="replace") as lines:
            for line in lines:
                for name, pattern in LOG_PATTERNS.items():
                    if pattern in line:
                        counts[name] += 1
    return counts


def client_rss() -> int:
    import psutil

    rss: int = psutil.Process().memory_info().rss
    return rss


def settled_rss(exclude: set[int], samples: int = 3, pause_s: float = 1.0) -> dict[str, Any]:
    """The median of a few samples: single readings jump with allocator and GC timing."""
    taken = []
    for index in range(samples):
        if index:
            time.sleep(pause_s)
        taken.append(sample_rss(exclude))
    taken.sort(key=lambda s: s["total"])
    return taken[len(taken) // 2]


# The processes a socket lives in: the proxy, the Gateway replica, the ConnectionHosts.
SOCKET_PATH = ("ProxyActor", "Gateway", "ConnectionHost")


def rss_growth(before: dict[str, Any], after: dict[str, Any], sockets: int) -> dict[str, Any]:
    delta = after["total"] - before["total"]
    titles = set(before["by_title"]) | set(after["by_title"])
    growth = {
        title: after["by_title"].get(title, 0) - before["by_title"].get(title, 0)
        for title in titles
    }
    by_title = {title: round(value / MIB, 1) for title, value in growth.items()}
    path = sum(v for t, v in growth.items() if any(t.endswith(name) for name in SOCKET_PATH))
    return {
        "ray_rss_mib": round(after["total"] / MIB, 1),
        "growth_mib": round(delta / MIB, 1),
        "per_socket_kib": round(delta / sockets / KIB, 1),
        # Proxy + Gateway + ConnectionHosts only: the model replicas' allocator noise left out.
        "socket_path_per_socket_kib": round(path / sockets / KIB, 1),
        # The processes that grew or shrank by at least 1 MiB.
        "growth_mib_by_process": {
            k: v for k, v in sorted(by_title.items(), key=lambda kv: -abs(kv[1])) if abs(v) >= 1
        },
    }


# --- the client -------------------------------------------------------------------------------
