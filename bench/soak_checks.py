"""The soak's client side: one socket's event reader and sender, and the checks that nothing was
lost, duplicated or reordered."""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
