"""Idle sockets, memory per socket and ping round trips: Haven next to two peers, in one run.

    python bench/sockets.py                    # 5,000 sockets per server, about 5 minutes
    python bench/sockets.py --sockets 200      # a quick look
    python bench/sockets.py --max 15000        # ramp until a server refuses or the bound

The benchmark starts each server itself, on loopback, one after another, with the same client:

1. `uvicorn_echo`: a plain FastAPI app under uvicorn with the WebSocket settings of Haven's
   Serve proxy (`bench/peers/echo_fastapi.py`);
2. `socketio`: Node.js Socket.IO, websocket transport only (`bench/peers/socketio_server.js`);
3. `serve_echo`: the same FastAPI echo as a Ray Serve ingress behind Serve's proxy
   (`bench/peers/echo_serve.py`): what Serve itself costs per socket, without Haven;
4. `haven`: serve_config.yaml on a local Ray cluster, authenticated sockets on `/ws`, five per
   account (Haven's per-user limit, so no setting is raised).

Per server: the RSS of its processes before, `--sockets` sockets opened at `--rate` a second by
`--clients` client processes (`bench/socket_clients.py`), the RSS once idle (memory per socket =
growth / sockets held), then `--ping-sockets` of them ping `--ping-rounds` times, evenly spread
over rounds of `--ping-round-s` seconds, one ping in flight per socket; RTT is from sending the
ping to reading its answer, at the client. Last, how many sockets are still open, and the close
codes of any that are not. Prints one JSON line on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # the project, uninstalled

from bench import loop_probe_report  # noqa: E402
from bench.json_line import print_json_line  # noqa: E402
from bench.socket_clients import raise_fd_limit  # noqa: E402
from bench.socket_pool import ClientPool  # noqa: E402
from bench.socket_report import machine, memory, quantiles, summary  # noqa: E402
from bench.socket_servers import (  # noqa: E402
    Server,
    echo_server,
    haven_server,
    serve_echo_server,
    socketio_server,
)

SERVERS = ("uvicorn_echo", "socketio", "serve_echo", "haven")


def log(message: str) -> None:
    print(f"[sockets {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def settled(server: Server, samples: int = 3) -> dict[str, int]:
    """The median of a few samples per group: single readings jump with allocator timing."""
    taken = []
    for index in range(samples):
        if index:
            time.sleep(1.0)
        taken.append(server.rss())
    return {key: sorted(s.get(key, 0) for s in taken)[samples // 2] for key in taken[-1]}


def measure(server: Server, pool: ClientPool, args: argparse.Namespace) -> dict[str, Any]:
    import psutil

    result: dict[str, Any] = {**server.about}
    if args.warmup:
        # First connections grow pools, caches and code paths once: not per-socket memory.
        total = (args.max or args.sockets) + args.warmup
        warm = pool.open(server.kind, server.urls(total)[-args.warmup :], args.rate, 60)
        pool.close()
        result["warmup_sockets"] = warm["opened"]
        time.sleep(2)
    before = settled(server)
    if args.max:
        urls = server.urls(args.max)
        opened: dict[str, Any] = {
            "opened": 0,
            "failed": 0,
            "errors": {},
            "open_s": 0.0,
            "deflate": 0,
        }
        for start in range(0, args.max, args.step):
            step = pool.open(
                server.kind, urls[start : start + args.step], args.rate, args.open_timeout
            )
            for key in ("opened", "failed", "open_s", "deflate"):
                opened[key] += step[key]
            opened["errors"] = step["errors"] or opened["errors"]
            held_now = pool.status()["open"]
            log(f"{server.name}: {held_now} open after {start + args.step}")
            if step["failed"] or held_now < opened["opened"]:
                break
    else:
        opened = pool.open(server.kind, server.urls(args.sockets), args.rate, args.open_timeout)
    log(
        f"{server.name}: {opened['opened']} opened, {opened['failed']} failed, {opened['open_s']} s"
    )
    time.sleep(args.settle_s)
    idle = settled(server)
    held = pool.status()["open"]
    result.update(
        {
            "opened": opened["opened"],
            "open_failed": opened["failed"],
            "open_errors": opened["errors"],
            "open_s": opened["open_s"],
            "permessage_deflate": opened["opened"] > 0 and opened["deflate"] == opened["opened"],
            "held_idle": held,
            "memory": memory(before, idle, held),
        }
    )
    if not args.max and held:
        count = min(args.ping_sockets, held)
        log(f"{server.name}: {count} sockets ping, {args.ping_rounds} x {args.ping_round_s} s")
        cpu_before, machine_before = server.cpu() if server.cpu else {}, psutil.cpu_times()
        pings = pool.ping(count, args.ping_rounds, args.ping_round_s)
        cpu_after, machine_after = server.cpu() if server.cpu else {}, psutil.cpu_times()
        phase_s = args.ping_rounds * args.ping_round_s
        result["ping"] = {
            "sockets": count,
            "rounds": args.ping_rounds,
            "round_s": args.ping_round_s,
            "offered_per_s": round(count / args.ping_round_s, 1),
            "started_at": round(pings["started_at"], 3),
            **quantiles(pings["rtts_ms"]),
            # Pings over 100 ms, by the whole second of the phase they were sent in: stalls
            # that hit every socket at once show as a few seconds with many slow pings.
            "over_100ms": len(pings["slow_at_s"]),
            "over_100ms_by_second": dict(Counter(int(t) for t in pings["slow_at_s"])),
            "lost": pings["lost"],
            # Of the whole machine's cores (other jobs included), and per server process.
            "machine_cpu_busy_pct": _busy_pct(machine_before, machine_after),
            "cpu_pct_by_process": {
                title: round((cpu_after[title] - used) / phase_s * 100)
                for title, used in sorted(cpu_before.items())
                if title in cpu_after and cpu_after[title] - used >= 0.5
            },
        }
        if args.loop_probe:
            # What each process on the path saw while the pings ran (`haven.loop_probe`).
            started, records = pings["started_at"], loop_probe_report.read(args.loop_probe)
            ended = started + args.ping_rounds * args.ping_round_s
            result["loop_probe"] = {
                "during_pings": loop_probe_report.totals(records, started, ended),
                "pauses_near_slow_seconds": loop_probe_report.pauses_near(
                    records, started, pings["slow_at_s"]
                ),
            }
    end = pool.status()
    result["open_at_end"] = end["open"]
    result["closed_during_run"] = end["closed"]
    pool.close()
    return result


def _busy_pct(before: Any, after: Any) -> float:
    """How busy all cores were between two `psutil.cpu_times()`, in % of all of them."""
    total = sum(after) - sum(before)
    idle = (after.idle + after.iowait) - (before.idle + before.iowait)
    return round((total - idle) / total * 100, 1) if total > 0 else 0.0


def run(args: argparse.Namespace) -> dict[str, Any]:

    out: dict[str, Any] = {
        "bench": "sockets",
        "sockets": args.max or args.sockets,
        "mode": "max" if args.max else "fixed",
        "machine": machine(),
        "fd_limit": raise_fd_limit(),
        "client": {
            "processes": args.clients,
            "open_rate_per_s": args.rate,
            "offers_permessage_deflate": args.deflate,
        },
        "ping_definition": "app-level ping per socket (Haven/echo: {type: ping} -> pong; "
        "Socket.IO: event `ping` with an ack); each of the first ping-sockets sockets sends one "
        "per round at offset index/ping_sockets of the round, one in flight; RTT send -> answer",
        # Five sockets per account is Haven's default limit: no per-user setting is raised.
        "settings_raised": {},
        "haven_gc": "CPython defaults" if args.gc_defaults else "haven.gc_policy.settle",
        "servers": {},
    }
    pool = ClientPool(args.clients, offer_deflate=args.deflate)
    try:
        chosen = [name for name in SERVERS if name in args.servers]
        for name in chosen:
            log(f"starting {name}")
            context: AbstractContextManager[Server]
            if name == "uvicorn_echo":
                context = echo_server()
            elif name == "socketio":
                context = socketio_server()
            elif name == "serve_echo":
                context = serve_echo_server(_children())
            else:
                context = _haven(args, exclude=_children())
            try:
                with context as server:
                    out["servers"][name] = measure(server, pool, args)
            except Exception as error:
                log(f"{name} failed: {error!r}")
                out["servers"][name] = {"error": f"{type(error).__name__}: {error}"}
                pool.close()
    finally:
        pool.stop()
    out.update(summary(out["servers"]))
    return out


def _children() -> set[int]:
    """This process's children so far (the client processes): not the server's."""
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True)}


@contextlib.contextmanager
def _haven(args: argparse.Namespace, exclude: set[int]) -> Iterator[Server]:
    from bench.soak import ScriptedModel

    with ScriptedModel() as model:
        # The scripted model and the client processes started before Ray: not Ray's processes.
        exclude = exclude | {model.pid or 0}
        sockets = (args.max or args.sockets) + args.warmup
        with haven_server(args.config, sockets, exclude, model.base_url) as s:
            yield s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=5000, help="per server")
    parser.add_argument("--max", type=int, default=0, help="ramp up to this bound instead")
    parser.add_argument("--step", type=int, default=1000, help="sockets per step with --max")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    parser.add_argument("--rate", type=float, default=200.0, help="new sockets per second")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--warmup", type=int, default=100, help="sockets opened and closed first")
    parser.add_argument("--settle-s", type=float, default=5.0, help="idle wait before RSS")
    parser.add_argument("--open-timeout", type=float, default=60.0)
    parser.add_argument("--ping-sockets", type=int, default=1000)
    parser.add_argument("--ping-rounds", type=int, default=5)
    parser.add_argument("--ping-round-s", type=float, default=5.0)
    parser.add_argument(
        "--no-deflate",
        dest="deflate",
        action="store_false",
        help="the client offers no permessage-deflate (browsers offer it)",
    )
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "serve_config.yaml")
    parser.add_argument(
        "--loop-probe",
        type=Path,
        help="file for Haven's loop-lag and GC probe (HAVEN_LOOP_PROBE), lined up with the pings",
    )
    parser.add_argument(
        "--gc-defaults",
        action="store_true",
        help="Haven's processes keep CPython's GC settings (HAVEN_GC_SETTLE=0), for comparing",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="with --loop-probe: growth by allocation site per process (slows Haven down)",
    )
    args = parser.parse_args(argv)
    if args.tracemalloc:
        os.environ["HAVEN_LOOP_PROBE_TRACEMALLOC"] = "1"
    if args.gc_defaults:
        os.environ["HAVEN_GC_SETTLE"] = "0"
    if args.loop_probe:
        # Ray's processes inherit this process's environment.
        args.loop_probe = args.loop_probe.resolve()
        args.loop_probe.unlink(missing_ok=True)
        os.environ["HAVEN_LOOP_PROBE"] = str(args.loop_probe)
    args.servers = {s.strip() for s in args.servers.split(",") if s.strip()}
    if unknown := args.servers - set(SERVERS):
        parser.error(f"unknown servers {sorted(unknown)}; choose from {', '.join(SERVERS)}")
    if min(args.sockets, args.step, args.clients, args.ping_rounds) < 1 or args.max < 0:
        parser.error("counts must be positive")
    print_json_line(lambda: run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
