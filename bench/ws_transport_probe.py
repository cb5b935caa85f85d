"""What Ray Serve's proxy does to WebSocket frames before Haven's `/ws` sees them.

Starts a local Ray cluster (one to three times, one per phase), deploys a tiny FastAPI echo app
whose socket answers every message with its type and length, and talks to it through the proxy
with a `websockets` client:

- `default`: Serve exactly as Haven runs it today (uvicorn's defaults: 16 MiB messages,
  permessage-deflate on, 20 s pings);
- `limited`: the proxy's uvicorn given a 64 KiB message limit and 1 s pings through
  `RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH` (see `limit_proxy_websockets`), deflate kept on
  so that a compression bomb can be tried against the limit;
- `no_deflate`: the same, with permessage-deflate turned off.

Prints one JSON line of findings on stdout (progress goes to stderr). Every Ray process it starts
is stopped before it exits.

    .venv/bin/python bench/ws_transport_probe.py [--phases default,limited,no_deflate]
"""

# No `from __future__ import annotations` here: the echo deployment below is defined in
# `__main__`, so Ray pickles it by value, and a pickled function keeps only the globals its code
# uses. FastAPI would then fail to resolve a string annotation such as "WebSocket" and take the
# socket for a query parameter (the handshake fails with 1008).
import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import struct
import sys
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, WebSocket

PROXY_CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
# The proxy imports this module by name: Ray puts the driver script's directory on the workers'
# `sys.path` (`py_driver_sys_path`), so the probe needs no package of its own.
PROXY_CALLBACK = "ws_transport_probe:limit_proxy_websockets"

# The variables `limit_proxy_websockets` reads in the proxy process.
ENV_MAX_FRAME_BYTES = "HAVEN_MAX_FRAME_BYTES"
ENV_PER_MESSAGE_DEFLATE = "HAVEN_WS_PER_MESSAGE_DEFLATE"
ENV_PING_INTERVAL_S = "HAVEN_WS_PING_INTERVAL_S"
ENV_PING_TIMEOUT_S = "HAVEN_WS_PING_TIMEOUT_S"

KIB = 1024
MIB = 1024 * KIB
HAVEN_FRAME_LIMIT = 64 * KIB
UVICORN_DEFAULT_LIMIT = 16 * MIB
# Negotiated by uvicorn's websockets-sansio server (`server_max_window_bits=12`,
# `client_max_window_bits=12`): the client compresses with a 4 KiB window.
CLIENT_WINDOW_BITS = 12

PHASES: dict[str, dict[str, str]] = {
    "default": {},
    "limited": {
        PROXY_CALLBACK_ENV: PROXY_CALLBACK,
        ENV_MAX_FRAME_BYTES: str(HAVEN_FRAME_LIMIT),
        ENV_PER_MESSAGE_DEFLATE: "true",
        ENV_PING_INTERVAL_S: "1",
        ENV_PING_TIMEOUT_S: "1",
    },
    "no_deflate": {
        PROXY_CALLBACK_ENV: PROXY_CALLBACK,
        ENV_MAX_FRAME_BYTES: str(HAVEN_FRAME_LIMIT),
        ENV_PER_MESSAGE_DEFLATE: "false",
    },
}


# --- the proxy-side hook (runs inside the Serve proxy actor) --------------------------------


def proxy_websocket_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """uvicorn `Config` keyword arguments for the WebSocket settings named in `env`."""
    overrides: dict[str, Any] = {}
    if max_size := env.get(ENV_MAX_FRAME_BYTES):
        overrides["ws_max_size"] = int(max_size)
    if deflate := env.get(ENV_PER_MESSAGE_DEFLATE):
        overrides["ws_per_message_deflate"] = deflate.strip().lower() in {"1", "true", "yes", "on"}
    for name, key in (
        (ENV_PING_INTERVAL_S, "ws_ping_interval"),
        (ENV_PING_TIMEOUT_S, "ws_ping_timeout"),
    ):
        if (value := env.get(name)) is not None:
            # uvicorn takes None (not 0) to turn keepalive pings off.
            overrides[key] = (
                None if value.strip().lower() in {"", "0", "none", "off"} else float(value)
            )
    return overrides


def limit_proxy_websockets() -> list[Any]:
    """Target of `RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`.

    Serve calls it in each proxy actor's constructor (`configure_http_middlewares`), before the
    task that builds `uvicorn.Config(...)` runs; Serve passes no `ws_*` arguments of its own, so
    defaulting them here sets the proxy's WebSocket limits. It adds no middleware.
    """
    import uvicorn

    overrides = proxy_websocket_overrides(os.environ)
    original = uvicorn.Config.__init__
    if not overrides or getattr(original, "_ws_overrides", None) is not None:
        return []

    def patched_init(self: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        for key, value in overrides.items():
            # An argument Serve (or anyone) passes explicitly wins over ours.
            kwargs.setdefault(key, value)
        original(self, *args, **kwargs)

    patched_init._ws_overrides = overrides  # type: ignore[attr-defined]
    setattr(uvicorn.Config, "__init__", patched_init)  # noqa: B010 - mypy refuses method assignment
    print(f"proxy WebSocket settings: {overrides}", file=sys.stderr, flush=True)
    return []


# --- the echo app (runs in a Serve replica) ---------------------------------------------------


def build_echo_app() -> Any:
    from ray import serve

    app = FastAPI()
    seen: list[dict[str, Any]] = []

    @serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=100)
    @serve.ingress(app)
    class Echo:
        @app.get("/seen")
        def get_seen(self) -> list[dict[str, Any]]:
            return seen[-20:]

        @app.websocket("/ws")
        async def echo(self, websocket: WebSocket) -> None:
            await websocket.accept()
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    # What Haven gets when the proxy ends a socket on its own (e.g. 1009).
                    seen.append({"disconnect": message.get("code")})
                    return
                text, data = message.get("text"), message.get("bytes")
                size = len(text) if text is not None else len(data or b"")
                kind = "text" if text is not None else "bytes"
                seen.append({"kind": kind, "len": size})
                await websocket.send_text(json.dumps({"kind": kind, "len": size}))

    return Echo.bind()  # type: ignore[attr-defined]


# --- measurements ---------------------------------------------------------------------------


def _status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak(pid: int) -> bool:
    # "5" resets VmHWM (peak RSS) to the current RSS (proc(5), clear_refs).
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def peak_rss(pids: Mapping[str, int | None]) -> Iterator[dict[str, float | None]]:
    """Peak RSS growth (MiB) of each process while the block runs."""
    before: dict[str, int | None] = {}
    for name, pid in pids.items():
        before[name] = _status_kib(pid, "VmRSS") if pid and _reset_peak(pid) else None
    deltas: dict[str, float | None] = {}
    try:
        yield deltas
    finally:
        for name, pid in pids.items():
            start = before[name]
            peak = _status_kib(pid, "VmHWM") if pid else None
            deltas[name] = (
                None if start is None or peak is None else round((peak - start) / 1024, 1)
            )


def serve_pids() -> dict[str, int | None]:
    from ray._private import state

    pids: dict[str, int | None] = {"proxy": None, "replica": None}
    for info in state.actors().values():
        if info.get("State") != "ALIVE":
            continue
        cls = str(info.get("ActorClassName", ""))
        if cls == "ProxyActor":
            pids["proxy"] = int(info["Pid"])
        elif cls.startswith("ServeReplica"):
            pids["replica"] = int(info["Pid"])
    return pids


def deflated_size(payload: bytes) -> int:
    """About what the client puts on the wire for `payload` with the negotiated window."""
    compressor = zlib.compressobj(wbits=-CLIENT_WINDOW_BITS)
    return len(compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))


# --- the client side --------------------------------------------------------------------------


async def _connect(url: str, *, compress: bool) -> Any:
    from websockets.asyncio.client import connect

    return await connect(
        url,
        compression="deflate" if compress else None,
        max_size=MIB,
        ping_interval=None,
        open_timeout=30,
        close_timeout=5,
    )


async def extensions(url: str, *, compress: bool) -> str | None:
    ws = await _connect(url, compress=compress)
    try:
        header: str | None = ws.response.headers.get("Sec-WebSocket-Extensions")
        return header
    finally:
        await ws.close()


async def send_one(
    url: str, payload: str | list[str], *, compress: bool, timeout_s: float = 60
) -> dict[str, Any]:
    """Send one message (a list is sent as that many fragments of one message) on a fresh
    socket; what came back: the replica's length, or how the socket was closed."""
    from websockets.exceptions import ConnectionClosed

    ws = await _connect(url, compress=compress)
    started = time.monotonic()
    result: dict[str, Any]
    try:
        await asyncio.wait_for(ws.send(payload), timeout_s)
        reply = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
        result = {"result": "echoed", "replica_len": reply["len"], "replica_kind": reply["kind"]}
    except ConnectionClosed as closed:
        frame = closed.rcvd
        result = {
            "result": "closed",
            "close_code": frame.code if frame else None,
            "close_reason": frame.reason if frame else None,
        }
    except TimeoutError:
        result = {"result": "timeout"}
    finally:
        with contextlib.suppress(Exception):
            await ws.close()
    result["elapsed_s"] = round(time.monotonic() - started, 2)
    return result


async def raw_keepalive(host: str, port: int, listen_s: float) -> list[dict[str, Any]]:
    """Open a socket with a bare handshake, then never answer: which control frames arrive."""
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    started, seen = time.monotonic(), []
    try:
        while time.monotonic() - started < listen_s:
            head = await asyncio.wait_for(reader.readexactly(2), listen_s)
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", await reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", await reader.readexactly(8))[0]
            payload = await reader.readexactly(length)
            event: dict[str, Any] = {"at_s": round(time.monotonic() - started, 2)}
            if opcode == 0x9:
                event["frame"] = "ping"
            elif opcode == 0x8:
                event["frame"] = "close"
                event["code"] = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                event["reason"] = payload[2:].decode(errors="replace")
            else:
                event["frame"] = f"opcode {opcode}"
            seen.append(event)
            if opcode == 0x8:
                break
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        seen.append({"at_s": round(time.monotonic() - started, 2), "frame": "eof"})
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return seen


async def measured(
    pids: Mapping[str, int | None], name: str, action: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    print(f"  {name}", file=sys.stderr, flush=True)
    with peak_rss(pids) as peaks:
        result = await action()
    result["peak_rss_growth_mib"] = peaks
    return {"case": name, **result}


async def probe(phase: str, host: str, port: int) -> dict[str, Any]:
    url = f"ws://{host}:{port}/ws"
    pids = serve_pids()
    out: dict[str, Any] = {
        "extensions_offering_deflate": await extensions(url, compress=True),
        "extensions_without_offer": await extensions(url, compress=False),
    }
    cases: list[dict[str, Any]] = []
    limit = UVICORN_DEFAULT_LIMIT if phase == "default" else HAVEN_FRAME_LIMIT

    # Compression bombs first, while the proxy is fresh: after a large message the allocator
    # keeps its pages, and a later inflation reuses them without raising the peak RSS.
    if phase != "no_deflate":
        bombs = [20 * MIB] + ([15 * MIB] if phase == "default" else [limit + 1])
        for size in bombs:
            payload = "0" * size
            wire = deflated_size(payload.encode())
            case = await measured(
                pids,
                f"compressed text frame inflating to {size} bytes (~{wire} on the wire)",
                lambda payload=payload: send_one(url, payload, compress=True),  # type: ignore[misc]
            )
            cases.append({**case, "inflated_bytes": size, "wire_bytes_approx": wire})

    sizes = [HAVEN_FRAME_LIMIT, HAVEN_FRAME_LIMIT + 1, MIB]
    if phase == "default":
        sizes += [UVICORN_DEFAULT_LIMIT, UVICORN_DEFAULT_LIMIT + 1]
    if phase == "no_deflate":
        sizes = [HAVEN_FRAME_LIMIT, HAVEN_FRAME_LIMIT + 1]
    for size in sizes:
        text = "a" * size
        cases.append(
            await measured(
                pids,
                f"text frame of {size} bytes, uncompressed",
                lambda text=text: send_one(url, text, compress=False),  # type: ignore[misc]
            )
        )
    if phase == "default":
        fragments = ["b" * (64 * KIB)] * 16
        cases.append(
            await measured(
                pids,
                "1 MiB message as 16 fragments of 64 KiB",
                lambda: send_one(url, fragments, compress=False),
            )
        )

    if phase == "limited":
        out["keepalive_without_pongs"] = await raw_keepalive(host, port, listen_s=6)

    out["cases"] = cases
    out["largest_echoed"] = max(
        (case["replica_len"] for case in cases if case.get("result") == "echoed"), default=None
    )
    return out


# --- running a phase ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_phase(phase: str) -> dict[str, Any]:
    import httpx
    import ray
    from ray import serve

    env = PHASES[phase]
    saved = {
        name: os.environ.get(name) for name in {*env, *(k for p in PHASES.values() for k in p)}
    }
    for name in saved:
        os.environ.pop(name, None)
    # The raylet, and with it every worker (the proxy included), inherits this environment.
    os.environ.update(env)
    host, port = "127.0.0.1", free_port()
    print(f"phase {phase}: starting Ray and Serve on port {port}", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        ray.init(
            address="local",
            include_dashboard=False,
            num_cpus=2,
            object_store_memory=256 * MIB,
            log_to_driver=False,
        )
        serve.start(http_options={"host": host, "port": port})
        serve.run(build_echo_app(), name="probe", route_prefix="/")
        startup_s = round(time.monotonic() - started, 1)
        result = asyncio.run(probe(phase, host, port))
        seen = httpx.get(f"http://{host}:{port}/seen", timeout=10).json()
        result["replica_saw_disconnect_codes"] = sorted(
            {event["disconnect"] for event in seen if "disconnect" in event}
        )
        return {"env": env, "startup_s": startup_s, **result}
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


def versions() -> dict[str, str]:
    import fastapi
    import ray
    import uvicorn
    import websockets
    from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

    auto = AutoWebSocketsProtocol
    return {
        "ray": ray.__version__,
        "uvicorn": uvicorn.__version__,
        "websockets": websockets.__version__,
        "fastapi": fastapi.__version__,
        "uvicorn_ws_auto": f"{auto.__module__}.{auto.__qualname__}" if auto else "none",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phases", default="default,limited,no_deflate")
    parser.add_argument("--timeout", type=int, default=420, help="seconds for the whole run")
    args = parser.parse_args(argv)
    phases = [phase.strip() for phase in args.phases.split(",") if phase.strip()]
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {sorted(unknown)}")

    def _too_long(*_: object) -> None:
        raise TimeoutError(f"the probe ran past {args.timeout} s")

    # Bounded: an alarm ends a stuck phase, and its `finally` still stops Ray.
    signal.signal(signal.SIGALRM, _too_long)
    signal.alarm(args.timeout)
    findings: dict[str, Any] = {"versions": versions()}
    try:
        for phase in phases:
            findings[phase] = run_phase(phase)
    finally:
        signal.alarm(0)
    print(json.dumps(findings, sort_keys=False))


if __name__ == "__main__":
    main()
