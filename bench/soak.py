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
import contextlib
import json
import logging
import math
import multiprocessing
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    # Lets `python bench/soak.py` import the project (and tests/openai_server.py) as is.
    sys.path.insert(0, str(REPO_ROOT))

logger = logging.getLogger("bench.soak")

PASSWORD = "soak horse battery staple"
SECRET = "soak-secret-" + secrets.token_hex(24)
# Everyday worries the classifier leaves at "none" or "low", so every turn reaches the model.
PROMPTS: tuple[str, ...] = (
    "I feel anxious about my exam tomorrow.",
    "Work has been overwhelming and I can't switch off in the evenings.",
    "My best friend hasn't replied to me in days and I don't know why.",
    "I keep waking up at 4am and can't get back to sleep.",
    "I had an argument with my sister and I feel guilty.",
    "I moved to a new city and I feel lonely most evenings.",
    "I procrastinate all day and then feel bad about myself.",
    "How can I calm down before a job interview?",
    "I get nervous speaking up in meetings.",
    "My flatmate is messy and I don't know how to bring it up.",
)
# The scripted model's reply: few, short chunks, no delays.
REPLY_PIECES: tuple[str, ...] = ("I hear you. ", "That sounds ", "really hard.")
MIB = 1024 * 1024
KIB = 1024


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


# --- memory -----------------------------------------------------------------------------------


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
        # Without the method running now: "ray::ConnectionHost.attach" is "ray::ConnectionHost".
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


@dataclass
class Socket:
    index: int
    user: int
    token: str
    session_id: str
    ws: Any = None
    # Every event received after `connection`, with its arrival time (perf_counter).
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    sent: dict[str, float] = field(default_factory=dict)  # client_message_id -> sent at
    texts: list[str] = field(default_factory=list)  # own messages' texts, in order
    cmids: list[str] = field(default_factory=list)  # own client_message_ids, in order
    reply_ids: list[str] = field(default_factory=list)  # own replies' message ids, in order
    first_chunk_s: list[float] = field(default_factory=list)
    complete_s: list[float] = field(default_factory=list)
    echo_s: list[float] = field(default_factory=list)
    completes_seen: int = 0
    expected_completes: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    closed: str | None = None
    # Set by the reader when a turn of this socket completes: client_message_id -> future.
    waiting: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    current: str | None = None  # client_message_id of the turn the events now belong to
    failures: list[str] = field(default_factory=list)


def cmid(socket: int, message: int) -> str:
    return f"s{socket}-m{message}"


async def read_events(sock: Socket) -> None:
    """Records every event; resolves a sender's wait when its message's reply completes."""
    first_chunk_seen: set[str] = set()
    try:
        async for raw in sock.ws:
            at = time.perf_counter()
            event = json.loads(raw)
            sock.events.append((at, event))
            kind = event.get("type")
            if kind == "user_message":
                sock.current = event.get("client_message_id")
                if sock.current in sock.sent:
                    sock.echo_s.append(at - sock.sent[sock.current])
            elif kind == "assistant_message_chunk":
                if sock.current in sock.sent and sock.current not in first_chunk_seen:
                    first_chunk_seen.add(sock.current)
                    sock.first_chunk_s.append(at - sock.sent[sock.current])
            elif kind == "assistant_message_complete":
                sock.completes_seen += 1
                own = sock.current
                if own in sock.sent:
                    sock.complete_s.append(at - sock.sent[own])
                    sock.reply_ids.append(event.get("message_id", ""))
                    waiter = sock.waiting.pop(own, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)
                sock.current = None
                if sock.completes_seen >= sock.expected_completes:
                    sock.done.set()
            elif kind == "error":
                sock.failures.append(f"error event: {event.get('code')}")
                for waiter in sock.waiting.values():
                    if not waiter.done():
                        waiter.set_exception(RuntimeError(f"error event {event.get('code')}"))
    except Exception as error:
        sock.closed = f"{type(error).__name__}: {error}"
    else:
        sock.closed = f"closed, code {sock.ws.close_code}"
    finally:
        for waiter in sock.waiting.values():
            if not waiter.done():
                waiter.set_exception(RuntimeError(sock.closed or "socket closed"))
        sock.done.set()


async def send_messages(sock: Socket, messages: int, turn_timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    for index in range(messages):
        client_id = cmid(sock.index, index)
        prompt = PROMPTS[(sock.index + index) % len(PROMPTS)]
        # Plain words: the classifier read "(soak socket 0, message 1)" as critical risk.
        text = f"{prompt} (turn {index + 1})"
        waiter: asyncio.Future[None] = loop.create_future()
        sock.waiting[client_id] = waiter
        sock.cmids.append(client_id)
        sock.texts.append(text)
        frame = {
            "type": "session_message",
            "session_id": sock.session_id,
            "message_text": text,
            "client_message_id": client_id,
        }
        sock.sent[client_id] = time.perf_counter()
        await sock.ws.send(json.dumps(frame))
        # A failure is recorded and the socket goes on with its next message (not resending
        # this one): one failed turn counts as one lost message, and a late reply to it is
        # still recorded and checked.
        try:
            await asyncio.wait_for(waiter, timeout=turn_timeout_s)
        except TimeoutError:
            sock.failures.append(f"no reply to {client_id} within {turn_timeout_s:.0f} s")
        except RuntimeError as error:
            sock.failures.append(f"{client_id}: {error}")
            if sock.closed:
                return


@dataclass
class SocketCheck:
    problems: list[str]
    lost: int  # own messages without their echo or their complete on this socket
    duplicated: int  # extra echoes or completes of own messages on this socket


def check_socket(sock: Socket, user_cmids: set[str], messages: int) -> SocketCheck:
    """What is wrong with one socket's event stream."""
    problems = list(sock.failures)
    last_seq = 0
    echoes: Counter[str] = Counter()
    completes: Counter[str] = Counter()
    own_echo_order: list[str] = []
    own_complete_order: list[str] = []
    current: str | None = None
    chunks: list[str] = []
    started = False
    for _, event in sock.events:
        kind = event.get("type")
        seq = event.get("seq")
        if not isinstance(seq, int):
            problems.append(f"{kind} without seq")
        elif seq <= last_seq:
            problems.append(f"seq {seq} after {last_seq}")
        else:
            last_seq = seq
        if kind == "user_message":
            if current is not None:
                problems.append(f"echo of {event.get('client_message_id')} before {current} ended")
            current = event.get("client_message_id")
            if current not in user_cmids:
                problems.append(f"echo of a message nobody sent: {current}")
            if event.get("duplicate"):
                problems.append(f"duplicate echo of {current}")
            echoes[str(current)] += 1
            if current in sock.sent:
                own_echo_order.append(str(current))
            chunks, started = [], False
        elif kind == "assistant_message_start":
            if current is None or started:
                problems.append(f"assistant_message_start outside a turn ({current})")
            started = True
        elif kind == "assistant_message_chunk":
            if current is None or not started:
                problems.append("assistant_message_chunk outside a reply")
            chunks.append(str(event.get("chunk", "")))
        elif kind == "assistant_message_complete":
            if current is None or not started:
                problems.append("assistant_message_complete without its echo and start")
            else:
                completes[current] += 1
                if current in sock.sent:
                    own_complete_order.append(current)
                message = event.get("message") or {}
                if message.get("status") != "complete":
                    problems.append(f"reply to {current} has status {message.get('status')}")
                if "".join(chunks).strip() != message.get("text"):
                    problems.append(f"reply to {current}: complete text differs from its chunks")
            current, started = None, False
        elif kind == "safety_escalation":
            pass  # counted in the summary; the turn still ends with a complete reply
        else:
            problems.append(f"unexpected event {kind}")
    for client_id in sorted(user_cmids):
        if echoes[client_id] != 1:
            problems.append(f"{client_id}: {echoes[client_id]} echoes")
        if completes[client_id] != 1:
            problems.append(f"{client_id}: {completes[client_id]} completes")
    if own_echo_order != sock.cmids or own_complete_order != sock.cmids:
        problems.append("own messages echoed or completed out of order")
    if len(sock.cmids) != messages:
        problems.append(f"sent {len(sock.cmids)} of {messages} messages")
    lost = sum(1 for c in sock.cmids if not echoes[c] or not completes[c])
    duplicated = sum(max(0, echoes[c] - 1) + max(0, completes[c] - 1) for c in sock.cmids)
    return SocketCheck(problems, lost, duplicated)


def broadcast_view(sock: Socket) -> list[tuple[int, str, str | None]]:
    """The events every socket of the user should share: (seq, type, message id)."""
    shared = {
        "user_message",
        "assistant_message_start",
        "assistant_message_chunk",
        "assistant_message_complete",
        "safety_escalation",
    }
    return [
        (e.get("seq", -1), e["type"], e.get("message_id") or e.get("client_message_id"))
        for _, e in sock.events
        if e.get("type") in shared
    ]


def check_history(sock: Socket, stored: list[dict[str, Any]], messages: int) -> list[str]:
    roles = [m["role"] for m in stored]
    problems = []
    if roles.count("user") != messages or roles.count("assistant") != messages:
        problems.append(
            f"session {sock.session_id} stores {roles.count('user')} user and "
            f"{roles.count('assistant')} assistant messages"
        )
    if roles != ["user", "assistant"] * (len(roles) // 2) or len(roles) % 2:
        problems.append(f"session {sock.session_id}: roles not alternating")
    if [m["text"] for m in stored if m["role"] == "user"] != sock.texts:
        problems.append(f"session {sock.session_id}: stored user texts differ from those sent")
    if [m["id"] for m in stored if m["role"] == "assistant"] != sock.reply_ids:
        problems.append(f"session {sock.session_id}: stored replies differ from those completed")
    return problems


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def pick(q: float) -> float:
        # Nearest rank: the smallest value with at least q of the samples at or below it.
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {
        "n": len(ordered),
        "p50": round(pick(0.50) * 1000, 1),
        "p99": round(pick(0.99) * 1000, 1),
        "max": round(ordered[-1] * 1000, 1),
        "mean": round(statistics.fmean(ordered) * 1000, 1),
    }


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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
