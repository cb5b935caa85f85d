"""The three ways `bench/turn_latency.py` times one reply, and how it summarises them.

- `InProcessPath`: `ReplyService` (what the ResponseGenerator replica runs: intent planner,
  prompt building, the transformers backend) in this process;
- `HandlePath`: the ResponseGenerator through its Serve deployment handle, called with the
  adapter the ConnectionActor uses (`deployments.clients.ServeReplyGenerator`);
- `SocketPath`: a client on `/ws`, through the proxy, Gateway, ConnectionActor, safety screening
  and storage.

Every turn is a one-message conversation (a fresh session on the socket), so all three build the
same prompt. Each timing starts when the request is made; "first token" is the first non-empty
text of the reply; tokens are the complete reply counted by one tokenizer, whatever the chunking.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import statistics
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from haven.backends import ChatTurn, ReplyRequest

logger = logging.getLogger("bench.turn_latency")

CountTokens = Callable[[str], int]


class ServerBusy(RuntimeError):
    """The turn was refused with `busy`: the model's queue was full (`generator.max_queued`)."""


@dataclass(frozen=True)
class TurnTiming:
    ttft_s: float
    total_s: float
    tokens: int
    chunks: int
    # Other moments of the turn, in seconds from the request (e.g. "intent").
    marks: dict[str, float] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        # The first token's latency is counted in ttft; the rate covers the rest of the reply.
        streaming_s = self.total_s - self.ttft_s
        return (self.tokens - 1) / streaming_s if self.tokens > 1 and streaming_s > 0 else 0.0


class TurnPath(Protocol):
    name: str

    async def turn(self, prompt: str) -> TurnTiming: ...


def one_turn_request(prompt: str) -> ReplyRequest:
    """What the ConnectionActor asks for after the first message of a session is screened
    `none`: the planner chooses the intent."""
    return ReplyRequest(history=[ChatTurn(role="user", text=prompt)], risk_level="none")


async def _time_pieces(
    started: float, pieces: AsyncIterator[str], count_tokens: CountTokens, marks: dict[str, float]
) -> TurnTiming:
    ttft: float | None = None
    parts: list[str] = []
    async for piece in pieces:
        if not piece:
            continue
        if ttft is None:
            ttft = time.perf_counter() - started
        parts.append(piece)
    total = time.perf_counter() - started
    return TurnTiming(
        ttft_s=ttft if ttft is not None else total,
        total_s=total,
        # Stripped like the reply the ConnectionActor stores and sends as complete.
        tokens=count_tokens("".join(parts).strip()),
        chunks=len(parts),
        marks=marks,
    )


class InProcessPath:
    name = "inprocess"

    def __init__(self, service: Any, count_tokens: CountTokens) -> None:
        self._service = service  # models.llm.service.ReplyService
        self._count_tokens = count_tokens

    async def turn(self, prompt: str) -> TurnTiming:
        started = time.perf_counter()
        async with aclosing(self._service.generate(one_turn_request(prompt))) as items:
            await anext(items)  # the intent, as the replica yields it first
            marks = {"intent": time.perf_counter() - started}
            return await _time_pieces(started, items, self._count_tokens, marks)


class HandlePath:
    name = "handle"

    def __init__(self, generator: Any, count_tokens: CountTokens) -> None:
        self._generator = generator  # deployments.clients.ServeReplyGenerator
        self._count_tokens = count_tokens

    async def turn(self, prompt: str) -> TurnTiming:
        started = time.perf_counter()
        # Returns once the replica has yielded the intent, as for the ConnectionActor.
        stream = await self._generator.open(one_turn_request(prompt))
        marks = {"intent": time.perf_counter() - started}
        try:
            return await _time_pieces(started, aiter(stream), self._count_tokens, marks)
        finally:
            await stream.aclose()


class SocketPath:
    """One user on one socket; every prompt in a new session, so its history is that message."""

    name = "socket"

    def __init__(self, http: Any, ws: Any, token: str, count_tokens: CountTokens) -> None:
        self._http = http
        self._ws = ws
        self._token = token
        self._count_tokens = count_tokens

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str, count_tokens: CountTokens) -> AsyncIterator[SocketPath]:
        import httpx
        from websockets.asyncio.client import connect

        # Registration hashes with argon2 on a busy machine: allow it time.
        async with httpx.AsyncClient(base_url=url, timeout=60.0) as http:
            token = await _register_and_login(http)
            parts = urlsplit(url)
            scheme = "wss" if parts.scheme == "https" else "ws"
            ws_url = f"{scheme}://{parts.netloc}/ws?token={token}"
            async with connect(ws_url, max_size=None, open_timeout=60) as ws:
                first = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
                if first.get("type") != "connection":
                    raise RuntimeError(f"expected a connection event, got {first}")
                yield cls(http, ws, token, count_tokens)

    async def new_session(self) -> str:
        created = await self._http.post(
            "/sessions", headers={"Authorization": f"Bearer {self._token}"}
        )
        created.raise_for_status()
        session_id: str = created.json()["id"]
        return session_id

    async def events(
        self, prompt: str, session_id: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Sends `prompt` (in a new session unless `session_id` continues one) and yields the
        server's events for it, up to and including `assistant_message_complete`; an `error`
        event raises (`ServerBusy` for `busy`)."""
        if session_id is None:
            session_id = await self.new_session()
        frame = {"type": "session_message", "session_id": session_id, "message_text": prompt}
        await self._ws.send(json.dumps(frame))
        while True:
            event = json.loads(await self._ws.recv())
            kind = event.get("type")
            if kind == "error" and event.get("code") == "busy":
                raise ServerBusy(f"server busy: {event}")
            if kind == "error":
                raise RuntimeError(f"server error: {event}")
            yield event
            if kind == "assistant_message_complete":
                return

    async def turn(self, prompt: str, session_id: str | None = None) -> TurnTiming:
        """One message and its reply; in a new session unless `session_id` continues one."""
        if session_id is None:
            session_id = await self.new_session()
        sent = time.perf_counter()
        marks: dict[str, float] = {}
        ttft: float | None = None
        chunks = 0
        async with aclosing(self.events(prompt, session_id)) as events:
            async for event in events:
                kind = event.get("type")
                now = time.perf_counter() - sent
                if kind == "assistant_message_chunk":
                    chunks += 1
                    if ttft is None:
                        ttft = now
                elif kind in ("user_message", "assistant_message_start"):
                    # Stored and echoed; screened, planned and the reply opened.
                    marks.setdefault(kind, now)
                elif kind == "assistant_message_complete":
                    return TurnTiming(
                        ttft_s=ttft if ttft is not None else now,
                        total_s=now,
                        tokens=self._count_tokens(event["message"]["text"]),
                        chunks=chunks,
                        marks=marks,
                    )
                elif kind == "safety_escalation":
                    logger.warning("prompt %r was escalated; its reply is timed anyway", prompt)
        raise RuntimeError("the socket's events ended before the reply completed")


async def _register_and_login(http: Any) -> str:
    username = f"bench-{secrets.token_hex(6)}"
    password = secrets.token_urlsafe(18)
    credentials = {"username": username, "password": password}
    response = await http.post("/auth/register", json=credentials)
    if response.status_code != 201:
        raise RuntimeError(f"register: {response.status_code} {response.text}")
    response = await http.post("/auth/login", json=credentials)
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


async def measure(
    paths: Sequence[TurnPath],
    prompts: Sequence[str],
    warmup: Sequence[str],
    timeout_s: float,
) -> dict[str, list[TurnTiming]]:
    """Every prompt through every path, warm-up prompts first (untimed).

    The order of the paths rotates from one prompt to the next, so that none always runs first
    (on a cold cache) or right after another path's reply (on a warm or a busy CPU).
    """
    timings: dict[str, list[TurnTiming]] = {path.name: [] for path in paths}
    schedule = [*warmup, *prompts]
    for i, prompt in enumerate(schedule):
        shift = i % len(paths)
        for path in [*paths[shift:], *paths[:shift]]:
            timing = await asyncio.wait_for(path.turn(prompt), timeout_s)
            if i >= len(warmup):
                timings[path.name].append(timing)
            label = "timed" if i >= len(warmup) else "warm-up"
            logger.info("%s turn %d (%s): %s", path.name, i, label, timing)
    return timings


def percentile(values: Sequence[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def summarise(timings: Sequence[TurnTiming]) -> dict[str, Any]:
    if not timings:
        return {"turns": 0}
    ttft_ms = [t.ttft_s * 1000 for t in timings]
    rates = [t.tokens_per_s for t in timings]
    summary: dict[str, Any] = {
        "turns": len(timings),
        "ttft_ms_p50": round(percentile(ttft_ms, 50), 1),
        "ttft_ms_p90": round(percentile(ttft_ms, 90), 1),
        "tokens_per_s_p50": round(percentile(rates, 50), 2),
        "tokens_per_s_p90": round(percentile(rates, 90), 2),
        # The slow end: the rate nine turns in ten reach.
        "tokens_per_s_p10": round(percentile(rates, 10), 2),
        "reply_tokens_p50": statistics.median(t.tokens for t in timings),
        "chunks_p50": statistics.median(t.chunks for t in timings),
        "total_s_p50": round(statistics.median(t.total_s for t in timings), 3),
    }
    for mark in sorted({m for t in timings for m in t.marks}):
        values = [t.marks[mark] * 1000 for t in timings if mark in t.marks]
        summary[f"{mark}_ms_p50"] = round(statistics.median(values), 1)
    return summary


def ratio(path: dict[str, Any], base: dict[str, Any], key: str) -> float | None:
    if not path.get(key) or not base.get(key):
        return None
    return round(path[key] / base[key], 3)
