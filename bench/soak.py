"""A bounded soak of many concurrent WebSockets through a real local Haven.

    python bench/soak.py --sockets 200 --messages 20

Starts a scripted OpenAI-compatible streaming server on loopback (`tests/openai_server.py`, in
its own process: three short chunks per reply, no delays), starts a local Ray cluster and deploys
`serve_config.yaml` the way the integration tests do (real Gateway, ConnectionHosts and
SafetyClassifier; the ResponseGenerator on its `openai` backend pointed at the scripted server,
`planner: false`; a temporary SQLite database). Then:

1. registers `sockets / sockets-per-user` users over REST (argon2, bounded concurrency), logs
   them in and creates one session per socket;
2. runs two untimed warm-up turns on a throwaway user, then samples the RSS of every process of
   the Ray session (psutil, all descendants of this process except the scripted server);
3. opens every socket at once, waits for each `connection` event, samples RSS again;
4. every socket sends `--messages` `session_message`s, each with a `client_message_id`, one at a
   time: the next is sent when the previous one's `assistant_message_complete` has arrived (no
   pipelining). A user's sockets run concurrently, so their turns interleave in that user's
   queue and every socket also sees its sibling's turns (fan-out);
5. checks every socket's event stream and every session's stored history, samples RSS once more
   with the sockets still open, closes them, stops Ray, counts errors in the Ray workers' logs
   (`server_log`: failures a client may never see), and prints one JSON line on stdout (Ray's
   own output goes to stderr).

A socket whose message fails (an `error` event, or no reply within `--turn-timeout`) records it
and goes on with its next message without resending: one failed turn is one lost message.

Checks (any failure: exit status 1, and the JSON says which):
- every message of the user got exactly one `user_message` echo and one
  `assistant_message_complete` on every socket of that user, each after its echo; no `error`
  event, no `duplicate` echo, no event of a message nobody sent;
- `seq` strictly increasing on every socket; a user's sockets saw the same broadcast events with
  the same `seq`s;
- each socket's own messages were echoed and completed in the order it sent them, and the
  complete's text is the concatenation of that reply's chunks;
- `GET /sessions/{id}/messages` holds exactly `--messages` user and `--messages` assistant
  messages per session, alternating, with the texts sent and the reply ids completed, in order.

Latency is per message, on its own socket: sent -> first `assistant_message_chunk`, and sent ->
`assistant_message_complete`. Memory per socket is the growth in summed RSS of the Ray session's
processes divided by the socket count (the client's own process is reported apart, not in it).

Per-user limits are raised for the soak (see `soak_settings`); the JSON lists what was changed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import multiprocessing
import os
import secrets
import signal
import sys
import tempfile
import time
from collections import defaultdict
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    # Lets `python bench/soak.py` import the project (and tests/openai_server.py) as is.
    sys.path.insert(0, str(REPO_ROOT))

from bench.local_haven import free_port  # noqa: E402
from bench.process_stats import (  # noqa: E402 - after the path set-up above
    MIB,
    client_rss,
    cpu_seconds,
    cpu_used,
    rss_growth,
    scan_logs,
    settled_rss,
)
from bench.soak_checks import (  # noqa: E402
    Socket,
    broadcast_view,
    check_history,
    check_socket,
    percentiles,
    read_events,
    send_messages,
)

logger = logging.getLogger("bench.soak")

PASSWORD = "soak horse battery staple"
SECRET = "soak-secret-" + secrets.token_hex(24)
# The scripted model's reply: few, short chunks, no delays.
REPLY_PIECES: tuple[str, ...] = ("I hear you. ", "That sounds ", "really hard.")


# --- the scripted model, in its own process ---------------------------------------------------


def _serve_scripted_model(pipe: Pipe) -> None:
    """Child process: the fake OpenAI server until told to stop; then what it recorded."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us through the pipe
    from tests.openai_server import FakeOpenAIServer, Script

    with FakeOpenAIServer(Script(pieces=REPLY_PIECES)) as server:
        pipe.send(server.port)
        pipe.recv()
        record = server.record
        pipe.send(
            {
                "requests": len(record.requests),
                "completed": record.completed,
                "disconnects": record.disconnects,
                "max_active": record.max_active,
            }
        )


class ScriptedModel:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_serve_scripted_model, args=(child,), daemon=True)

    def __enter__(self) -> ScriptedModel:
        self._process.start()
        if not self._pipe.poll(60):
            raise RuntimeError("the scripted model server did not start")
        self.port: int = self._pipe.recv()
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> dict[str, int] | None:
        if not self._process.is_alive():
            return None
        stats = None
        with contextlib.suppress(Exception):
            self._pipe.send("stop")
            if self._pipe.poll(15):
                stats = self._pipe.recv()
        self._process.join(timeout=15)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        return stats

    def __exit__(self, *_: object) -> None:
        self.stop()


# --- setup over REST --------------------------------------------------------------------------


async def create_users(
    http: Any, users: int, concurrency: int, prefix: str
) -> list[tuple[str, str]]:
    """(token, user name) per user: register, then log in, `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> tuple[str, str]:
        name = f"{prefix}{index}"
        async with gate:
            created = await http.post(
                "/auth/register", json={"username": name, "password": PASSWORD}
            )
            if created.status_code != 201:
                raise RuntimeError(f"register {name}: {created.status_code} {created.text}")
            login = await http.post("/auth/login", json={"username": name, "password": PASSWORD})
            if login.status_code != 200:
                raise RuntimeError(f"login {name}: {login.status_code} {login.text}")
        return login.json()["access_token"], name

    return await asyncio.gather(*(one(i) for i in range(users)))


async def new_session(http: Any, token: str) -> str:
    response = await http.post("/sessions", headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 201:
        raise RuntimeError(f"new session: {response.status_code} {response.text}")
    session_id: str = response.json()["id"]
    return session_id


async def stored_messages(http: Any, token: str, session_id: str) -> list[dict[str, Any]]:
    response = await http.get(
        f"/sessions/{session_id}/messages", headers={"Authorization": f"Bearer {token}"}
    )
    if response.status_code != 200:
        raise RuntimeError(f"messages: {response.status_code} {response.text}")
    result: list[dict[str, Any]] = response.json()
    return result


async def open_socket(port: int, sock: Socket, open_timeout_s: float) -> None:
    from websockets.asyncio.client import connect

    sock.ws = await connect(
        f"ws://127.0.0.1:{port}/ws?token={sock.token}",
        open_timeout=open_timeout_s,
        max_size=2**20,
    )
    first = json.loads(await asyncio.wait_for(sock.ws.recv(), timeout=open_timeout_s))
    if first.get("type") != "connection":
        raise RuntimeError(f"socket {sock.index}: first event {first}")


async def warm_up(http: Any, port: int, prefix: str) -> None:
    """Two untimed turns on a throwaway user: imports, first batches and pools are warm before
    the memory baseline is taken."""
    token = (await create_users(http, 1, 1, prefix + "warm"))[0][0]
    sock = Socket(index=-1, user=-1, token=token, session_id=await new_session(http, token))
    sock.expected_completes = 2
    await open_socket(port, sock, 60)
    reader = asyncio.create_task(read_events(sock))
    await send_messages(sock, 2, 120)
    await sock.ws.close()
    await reader
    if sock.failures:
        raise RuntimeError(f"warm-up turns failed: {sock.failures}")


# --- the run ----------------------------------------------------------------------------------


def soak_settings(sockets_per_user: int, messages: int) -> dict[str, Any]:
    """Per-user limits raised so that the soak never meets them (defaults in haven/settings.py:
    burst 10 then 0.5 messages/s; 5 sockets; 30 new sockets a minute)."""
    per_user_messages = sockets_per_user * messages
    raised: dict[str, Any] = {
        "message_burst": max(10, per_user_messages),
        "message_rate_per_s": 100.0,
        # Every user is registered from this one address.
        "registrations_per_address_per_hour": 1_000_000,
    }
    if sockets_per_user > 5:
        raised["max_connections_per_user"] = sockets_per_user
    if sockets_per_user + 1 > 30:
        raised["new_connections_per_minute"] = sockets_per_user + 1
    return raised


async def soak(
    args: argparse.Namespace, port: int, exclude: set[int], model_pid: int | None
) -> dict[str, Any]:
    import httpx

    users = args.sockets // args.sockets_per_user
    prefix = f"soak{secrets.token_hex(3)}_"
    result: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
        started = time.perf_counter()
        accounts = await create_users(http, users, args.register_concurrency, prefix)
        sockets: list[Socket] = []
        for index in range(args.sockets):
            token, _ = accounts[index // args.sockets_per_user]
            sockets.append(
                Socket(index=index, user=index // args.sockets_per_user, token=token, session_id="")
            )
        sessions = await asyncio.gather(*(new_session(http, s.token) for s in sockets))
        for sock, session_id in zip(sockets, sessions, strict=True):
            sock.session_id = session_id
            sock.expected_completes = args.messages * args.sockets_per_user
        result["setup_s"] = round(time.perf_counter() - started, 1)
        log(f"{users} users, {len(sockets)} sessions in {result['setup_s']} s; warming up")

        await warm_up(http, port, prefix)
        await asyncio.sleep(2)
        before = await asyncio.to_thread(settled_rss, exclude)
        client_before = client_rss()

        log(f"opening {len(sockets)} sockets")
        started = time.perf_counter()
        opened = await asyncio.gather(
            *(open_socket(port, s, args.open_timeout) for s in sockets), return_exceptions=True
        )
        result["open_s"] = round(time.perf_counter() - started, 2)
        refused = [f"socket {s.index}: {o!r}" for s, o in zip(sockets, opened, strict=True) if o]
        if refused:
            result["open_failures"] = refused[:10]
            result["open_failed"] = len(refused)
            for sock in sockets:
                if sock.ws is not None:
                    await sock.ws.close()
            return result
        readers = [asyncio.create_task(read_events(s)) for s in sockets]
        await asyncio.sleep(2)
        idle = await asyncio.to_thread(settled_rss, exclude)
        client_idle = client_rss()

        log(f"{len(sockets)} sockets open; {args.messages} messages each")
        cpu_before = cpu_seconds(exclude, model_pid)
        started = time.perf_counter()
        await asyncio.gather(*(send_messages(s, args.messages, args.turn_timeout) for s in sockets))
        # A socket's sibling may still be finishing its last turns: wait for every fan-out.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(s.done.wait() for s in sockets)), timeout=args.turn_timeout
            )
        soak_s = time.perf_counter() - started
        cpu_after = cpu_seconds(exclude, model_pid)
        await asyncio.sleep(1)  # anything arriving late (a duplicate) is still recorded
        busy = await asyncio.to_thread(settled_rss, exclude)
        client_busy = client_rss()
        log(f"soak done in {soak_s:.1f} s; checking")

        by_user: dict[int, list[Socket]] = defaultdict(list)
        for sock in sockets:
            by_user[sock.user].append(sock)
        problems: dict[str, list[str]] = {}
        lost = duplicated = 0
        for group in by_user.values():
            user_cmids = {c for s in group for c in s.cmids}
            views = [broadcast_view(s) for s in group]
            for sock in group:
                checked = check_socket(sock, user_cmids, args.messages)
                lost += checked.lost
                duplicated += checked.duplicated
                found = checked.problems
                if sock.closed:
                    found.append(f"socket ended early: {sock.closed}")
                if any(view != views[0] for view in views):
                    found.append("the user's sockets saw different broadcast events")
                if found:
                    problems[f"socket {sock.index}"] = found
        stored = await asyncio.gather(
            *(stored_messages(http, s.token, s.session_id) for s in sockets)
        )
        for sock, history in zip(sockets, stored, strict=True):
            found = check_history(sock, history, args.messages)
            if found:
                problems.setdefault(f"socket {sock.index}", []).extend(found)

        for sock in sockets:
            await sock.ws.close()
        await asyncio.gather(*readers)
        await asyncio.sleep(2)
        after_close = await asyncio.to_thread(settled_rss, exclude)

    total = args.sockets * args.messages
    sent = sum(len(s.cmids) for s in sockets)
    result.update(
        {
            "messages_sent": sent,
            # A message never sent (its socket stopped at an earlier failure) counts as lost.
            "lost": lost + (total - sent),
            "duplicated": duplicated,
            "sockets_with_problems": len(problems),
            "problems": {k: v[:5] for k, v in list(problems.items())[:10]},
            # Turns the classifier escalated (the policy may then skip the model): not a
            # failure, but the soak means every turn to reach the model.
            "escalations": len(
                {
                    (s.user, e.get("seq"))
                    for s in sockets
                    for _, e in s.events
                    if e.get("type") == "safety_escalation"
                }
            ),
            "events_received": sum(len(s.events) for s in sockets),
            "soak_s": round(soak_s, 1),
            "turns_per_s": round(total / soak_s, 1),
            # Where the two cores went during the messages (all processes, client included).
            "cpu": cpu_used(cpu_before, cpu_after, total),
            "latency_ms": {
                "to_echo": percentiles([x for s in sockets for x in s.echo_s]),
                "to_first_chunk": percentiles([x for s in sockets for x in s.first_chunk_s]),
                "to_complete": percentiles([x for s in sockets for x in s.complete_s]),
            },
            "memory": {
                "ray_processes": before["processes"],
                "ray_rss_mib_before": round(before["total"] / MIB, 1),
                "sockets_open_idle": rss_growth(before, idle, args.sockets),
                "after_messages_sockets_open": rss_growth(before, busy, args.sockets),
                "after_close_growth_mib": round((after_close["total"] - before["total"]) / MIB, 1),
                "client_rss_growth_mib_idle": round((client_idle - client_before) / MIB, 1),
                "client_rss_growth_mib_after_messages": round(
                    (client_busy - client_before) / MIB, 1
                ),
            },
        }
    )
    return result


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import psutil
    import ray
    from ray import serve
    from ray.serve._private.constants import SERVE_NAMESPACE

    from deployments import proxy_hooks
    from deployments.launch import deploy, load_config, wait_ready
    from haven.storage import migrate

    out: dict[str, Any] = {
        "sockets": args.sockets,
        "users": args.sockets // args.sockets_per_user,
        "sockets_per_user": args.sockets_per_user,
        "messages_per_socket": args.messages,
        "mode": "one message in flight per socket: next sent after the previous reply completed",
        "model": f"scripted OpenAI-compatible server, {len(REPLY_PIECES)} chunks per reply, "
        "no delay",
    }
    settings_raised = soak_settings(args.sockets_per_user, args.messages)
    out["settings_raised"] = settings_raised
    with tempfile.TemporaryDirectory(prefix="haven-soak-") as data_dir, ScriptedModel() as model:
        database_url = f"sqlite+aiosqlite:///{Path(data_dir) / 'haven.db'}"
        migrate.upgrade(database_url)
        config_args: dict[str, dict[str, Any]] = {
            "settings": {
                "environment": "test",
                "jwt_secret": SECRET,
                "master_key": base64.b64encode(os.urandom(32)).decode(),
                "data_dir": data_dir,
                "database_url": database_url,
                "model_cache_dir": str(REPO_ROOT / ".cache" / "models"),
                **settings_raised,
            },
            "generator": {
                "backend": "openai",
                "planner": False,
                "openai": {
                    "base_url": model.base_url,
                    "model": "scripted",
                    "api_key_env": None,
                },
            },
        }
        port = args.port or free_port()
        # Our children before Ray starts (the scripted model, multiprocessing's helper) are not
        # Ray's; everything that appears below this process afterwards is.
        exclude = {p.pid for p in psutil.Process().children(recursive=True)}
        started = time.perf_counter()
        proxy_hooks.install()
        context: Any = ray.init(
            address="local",
            namespace=SERVE_NAMESPACE,
            include_dashboard=False,
            log_to_driver=args.ray_logs,
        )
        session_dir = context.address_info.get("session_dir")
        logs_dir = Path(session_dir) / "logs" if session_dir else None
        out["ray_logs"] = str(logs_dir)
        try:
            deploy(load_config(REPO_ROOT / "serve_config.yaml", port=port, args=config_args))
            wait_ready(port, timeout_s=300)
            out["startup_s"] = round(time.perf_counter() - started, 1)
            log(f"Haven ready on port {port} in {out['startup_s']} s")
            out.update(
                asyncio.run(
                    asyncio.wait_for(soak(args, port, exclude, model.pid), timeout=args.timeout)
                )
            )
        finally:
            log("shutting down Serve and Ray")
            with contextlib.suppress(Exception):
                serve.shutdown()
            ray.shutdown()
            out["server_log"] = scan_logs(logs_dir)
            # Requests the model saw: one per turn that reached it (plus the 2 warm-up turns).
            out["scripted_model"] = model.stop()
    return out


def passed(result: dict[str, Any]) -> bool:
    return (
        "error" not in result
        and not result.get("open_failed")
        and result.get("messages_sent") == result["sockets"] * result["messages_per_socket"]
        and result.get("lost") == 0
        and result.get("duplicated") == 0
        and result.get("sockets_with_problems") == 0
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--messages", type=int, default=20, help="per socket")
    parser.add_argument("--sockets-per-user", type=int, default=2)
    parser.add_argument("--register-concurrency", type=int, default=4)
    parser.add_argument("--turn-timeout", type=float, default=120.0, help="seconds per reply")
    parser.add_argument("--open-timeout", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds for the soak")
    parser.add_argument("--port", type=int, default=0, help="0: a free one")
    parser.add_argument("--ray-logs", action="store_true", help="Ray workers' logs to stderr")
    args = parser.parse_args(argv)
    if args.sockets < 1 or args.messages < 1 or args.sockets_per_user < 1:
        parser.error("--sockets, --messages and --sockets-per-user must be positive")
    if args.sockets % args.sockets_per_user:
        parser.error("--sockets must be a multiple of --sockets-per-user")
    logging.basicConfig(level=logging.WARNING)

    def _stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    # Ray and its processes print to stdout (e.g. raylet notices at shutdown): while they run,
    # file descriptor 1 goes to stderr, so that stdout carries only the JSON line.
    sys.stdout.flush()
    json_out = os.dup(1)
    os.dup2(2, 1)
    try:
        result = run(args)
    except BaseException as error:  # still one JSON line, and Ray was shut down by `run`
        result = {
            "sockets": args.sockets,
            "messages_per_socket": args.messages,
            "error": f"{type(error).__name__}: {error}",
        }
    finally:
        sys.stdout.flush()
        os.dup2(json_out, 1)
        os.close(json_out)
    result["ok"] = passed(result)
    print(json.dumps(result), flush=True)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
