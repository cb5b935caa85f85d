"""The three servers of `bench/sockets.py`, each started by the benchmark, and what they use.

- `peer_process`: a peer in a subprocess (the FastAPI echo under uvicorn, or Node's
  Socket.IO), ready once its port accepts connections; memory is the RSS of its process tree.
- `serve_echo_server`: the same FastAPI echo as a Ray Serve ingress behind Serve's proxy (one
  replica, Haven's proxy settings); memory is the RSS of the proxy and the replica.
- `haven_server`: serve_config.yaml on a local Ray cluster (`bench.local_haven`), the generator
  on the scripted OpenAI-compatible server (no turn runs), users written straight into the store
  with one precomputed argon2 hash and tokens minted with the run's JWT secret; memory is the RSS
  of the processes a socket lives in (proxy, Gateway replica, ConnectionHosts), and of the whole
  Ray tree apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.local_haven import BENCH_SETTINGS, local_haven, server_settings, temp_data_dir
from bench.process_stats import SOCKET_PATH, cpu_seconds, sample_rss

REPO_ROOT = Path(__file__).resolve().parents[1]
JS_DIR = REPO_ROOT / "bench" / "js"
SOCKETS_PER_USER = 5  # Haven's default `max_connections_per_user`: nothing to raise
START_TIMEOUT_S = 60.0

Rss = Callable[[], dict[str, int]]


@dataclass(frozen=True)
class Server:
    name: str
    kind: str  # the client protocol: haven, echo or socketio
    urls: Callable[[int], list[str]]  # the URL of every socket, for n sockets
    rss: Rss  # bytes per measured group of processes
    about: dict[str, Any]
    # CPU seconds so far per process title, where the server's processes are known (Haven).
    cpu: Callable[[], dict[str, float]] | None = None


def wait_port(port: int, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}")


def tree_rss(pid: int) -> int:
    import psutil

    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


@contextmanager
def peer_process(command: list[str]) -> Iterator[tuple[int, int]]:
    """(pid, port) of a peer that prints `listening PORT` when bound."""
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        if len(line) != 2 or line[0] != "listening":
            raise RuntimeError(f"{command[0]} did not start: {line}")
        port = int(line[1])
        wait_port(port)
        yield process.pid, port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def echo_server() -> Iterator[Server]:
    import fastapi
    import uvicorn
    import websockets

    with peer_process([sys.executable, "-m", "bench.peers.echo_fastapi", "0"]) as (pid, port):
        yield Server(
            name="uvicorn_echo",
            kind="echo",
            urls=lambda n: [f"ws://127.0.0.1:{port}/ws"] * n,
            rss=lambda: {"server": tree_rss(pid)},
            about={
                "versions": {
                    "uvicorn": uvicorn.__version__,
                    "websockets": websockets.__version__,
                    "fastapi": fastapi.__version__,
                },
                "ws": "websockets-sansio, Haven's proxy settings (deployments/proxy_hooks.py)",
            },
        )


@contextmanager
def socketio_server() -> Iterator[Server]:
    package = JS_DIR / "node_modules" / "socket.io" / "package.json"
    if not package.is_file():
        raise RuntimeError(
            "socket.io is not installed: run `make bench-setup` (npm ci in bench/js)"
        )
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    script = str(REPO_ROOT / "bench" / "peers" / "socketio_server.js")
    with peer_process(["node", script, "0"]) as (pid, port):
        url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        yield Server(
            name="socketio",
            kind="socketio",
            urls=lambda n: [url] * n,
            rss=lambda: {"server": tree_rss(pid)},
            about={
                "versions": {
                    "node": node.stdout.strip(),
                    "socket.io": json.loads(package.read_text())["version"],
                },
                "ws": "websocket transport only, perMessageDeflate off (Socket.IO's default)",
            },
        )


@contextmanager
def serve_echo_server(exclude: set[int]) -> Iterator[Server]:
    import ray
    from ray import serve

    from bench.local_haven import free_port
    from bench.peers.echo_serve import APP
    from deployments import proxy_hooks

    port = free_port()
    # The proxy reads its WebSocket limits from the environment Ray's processes inherit.
    proxy_hooks.install()
    ray.init(address="local", include_dashboard=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(APP, name="echo", route_prefix="/")
        wait_port(port)

        def rss() -> dict[str, int]:
            sample = sample_rss(exclude)
            by_title = sample["by_title"]
            path = sum(v for t, v in by_title.items() if t.endswith(("ProxyActor", ":Echo")))
            return {
                "server": path,
                "ray_tree": sample["total"],
                **{f"ray_process:{title}": value for title, value in by_title.items()},
            }

        yield Server(
            name="serve_echo",
            kind="echo",
            urls=lambda n: [f"ws://127.0.0.1:{port}/ws"] * n,
            rss=rss,
            cpu=lambda: cpu_seconds(exclude, None),
            about={
                "versions": {"ray": ray.__version__},
                "ws": "the FastAPI echo as a Serve ingress (one replica), Haven's proxy settings",
            },
        )
    finally:
        serve.shutdown()
        ray.shutdown()


async def _create_users(database_url: str, count: int, prefix: str) -> list[str]:
    from haven.auth import hash_password
    from haven.storage.store import Store

    # Every account gets the same hash: argon2 is meant to be slow, and nobody logs in here.
    password_hash = hash_password(secrets.token_urlsafe(16))
    async with Store.from_url(database_url) as store:
        users = [await store.create_user(f"{prefix}{i}", password_hash) for i in range(count)]
    return [user.id for user in users]


def haven_rss(exclude: set[int]) -> dict[str, int]:
    sample = sample_rss(exclude)
    on_path = sum(
        rss
        for title, rss in sample["by_title"].items()
        if any(title.endswith(name) for name in SOCKET_PATH)
    )
    by_title = {f"ray_process:{title}": rss for title, rss in sample["by_title"].items()}
    return {"server": on_path, "ray_tree": sample["total"], **by_title}


@contextmanager
def haven_server(
    config_path: Path, max_sockets: int, exclude: set[int], generator_base_url: str
) -> Iterator[Server]:
    """Haven with `max_sockets / SOCKETS_PER_USER` accounts; `exclude`: this process's children
    that are not Ray's (started before Ray)."""
    from haven.auth import TokenService

    users = -(-max_sockets // SOCKETS_PER_USER)
    with temp_data_dir() as data_dir:
        settings = server_settings(data_dir, REPO_ROOT / ".cache" / "models")
        for raised in BENCH_SETTINGS:  # no turn runs: every limit stays as configured
            settings.pop(raised)
        args: dict[str, dict[str, Any]] = {
            "settings": settings,
            "generator": {
                "backend": "openai",
                "planner": False,
                "openai": {
                    "base_url": generator_base_url,
                    "model": "scripted",
                    "api_key_env": None,
                },
            },
        }
        started = time.perf_counter()
        with local_haven(config_path, args) as haven:
            startup_s = time.perf_counter() - started
            started = time.perf_counter()
            ids = asyncio.run(_create_users(settings["database_url"], users, "sockets_"))
            tokens = TokenService(settings["jwt_secret"], ttl_s=3600)
            minted = [tokens.issue(user_id)[0] for user_id in ids]
            setup_s = time.perf_counter() - started
            ws = haven.url.replace("http://", "ws://")

            def urls(n: int) -> list[str]:
                return [f"{ws}/ws?token={minted[i // SOCKETS_PER_USER]}" for i in range(n)]

            yield Server(
                name="haven",
                kind="haven",
                urls=urls,
                rss=lambda: haven_rss(exclude),
                cpu=lambda: cpu_seconds(exclude, None),
                about={
                    "config": config_path.name,
                    "startup_s": round(startup_s, 1),
                    "users": users,
                    "sockets_per_user": SOCKETS_PER_USER,
                    "users_and_tokens_s": round(setup_s, 1),
                    "generator": "scripted OpenAI-compatible server (no turn runs)",
                },
            )
