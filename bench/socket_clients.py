"""The client side of `bench/sockets.py`: many idle WebSockets held by a few worker processes.

One Python client drives all three servers; only the handshake and the ping differ:

- `haven`: `ws://HOST/ws?token=JWT`, the `connection` event first; ping `{"type":"ping"}`,
  answer `{"type":"pong"}` (Haven's own frames, docs/protocol.md);
- `echo`: the same frames on the FastAPI echo peer (`bench/peers/echo_fastapi.py`);
- `socketio`: Engine.IO v4 / Socket.IO v5 over a plain WebSocket
  (`/socket.io/?EIO=4&transport=websocket`): the open packet `0{...}`, then `40` to join the
  default namespace and its `40{...}` answer; engine pings `2` are answered with `3`; a ping is
  the event `42<id>["ping",<n>]` and its answer the acknowledgement `43<id>[<n>]`.

A worker process holds its share of the sockets, one reader task each, and obeys commands sent
through a pipe (`open`, `ping`, `status`, `close`) by `bench.socket_pool.ClientPool`; several of
them keep the client from being the bottleneck of a single Python process. Client-side protocol
pings are off (browsers send none); the servers' own pings are answered by the `websockets`
library. permessage-deflate is offered, as browsers do, unless the pool is told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any

OPEN_IN_FLIGHT = 256  # handshakes under way at once, per worker
PING_TIMEOUT_S = 10.0
SLOW_MS = 100.0  # a ping this slow is a stall, not queueing: its moment is recorded
HAVEN_PING = json.dumps({"type": "ping"})


def raise_fd_limit() -> int:
    """The soft limit on open files raised to the hard one (inherited by children)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass
class ClientSocket:
    kind: str
    ws: Any
    answered: asyncio.Future[float] | None = None
    acks: int = 0
    reader: asyncio.Task[None] | None = None
    deflate: bool = False
    close_code: int | None = field(default=None)

    @property
    def is_open(self) -> bool:
        return self.close_code is None and self.reader is not None and not self.reader.done()


async def _handshake(kind: str, ws: Any, timeout_s: float) -> None:
    async def recv() -> str:
        message = await asyncio.wait_for(ws.recv(), timeout=timeout_s)
        return message if isinstance(message, str) else message.decode()

    if kind == "haven":
        first = json.loads(await recv())
        if first.get("type") != "connection":
            raise RuntimeError(f"first event {first.get('type')!r}: {first}")
    elif kind == "socketio":
        if not (await recv()).startswith("0"):
            raise RuntimeError("no Engine.IO open packet")
        await ws.send("40")
        while not (answer := await recv()).startswith("40"):
            if answer == "2":
                await ws.send("3")
            elif answer.startswith("44"):
                raise RuntimeError(f"namespace refused: {answer}")


async def _read(sock: ClientSocket) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        async for message in sock.ws:
            if not isinstance(message, str):
                continue
            if sock.kind == "socketio":
                if message == "2":
                    await sock.ws.send("3")
                    continue
                answer = message.startswith("43")
            else:
                answer = message.startswith("{") and json.loads(message).get("type") == "pong"
            if answer and sock.answered is not None and not sock.answered.done():
                sock.answered.set_result(time.perf_counter())
    except ConnectionClosed:
        pass
    finally:
        sock.close_code = sock.ws.close_code if sock.ws.close_code is not None else -1


async def open_socket(kind: str, url: str, timeout_s: float, offer_deflate: bool) -> ClientSocket:
    from websockets.asyncio.client import connect

    ws = await connect(
        url,
        open_timeout=timeout_s,
        max_size=2**20,
        ping_interval=None,
        compression="deflate" if offer_deflate else None,
    )
    try:
        await _handshake(kind, ws, timeout_s)
    except BaseException:
        await ws.close()
        raise
    extensions = getattr(ws.protocol, "extensions", [])
    sock = ClientSocket(kind=kind, ws=ws, deflate=any("deflate" in e.name for e in extensions))
    sock.reader = asyncio.create_task(_read(sock))
    return sock


async def ping(sock: ClientSocket) -> float:
    """One application-level round trip in milliseconds, measured at this client."""
    loop = asyncio.get_running_loop()
    sock.answered = loop.create_future()
    if sock.kind == "socketio":
        sock.acks += 1
        frame = f'42{sock.acks}["ping",{sock.acks}]'
    else:
        frame = HAVEN_PING
    sent = time.perf_counter()
    await sock.ws.send(frame)
    received = await asyncio.wait_for(sock.answered, PING_TIMEOUT_S)
    return (received - sent) * 1000


class Worker:
    """The sockets of one worker process (global indices `first`, `first + step`, ...)."""

    def __init__(self, first: int, step: int) -> None:
        self.first, self.step = first, step
        self.sockets: list[ClientSocket] = []

    async def open(
        self, kind: str, urls: list[str], rate_per_s: float, timeout_s: float, offer_deflate: bool
    ) -> dict[str, Any]:
        gate = asyncio.Semaphore(OPEN_IN_FLIGHT)
        errors: Counter[str] = Counter()
        started = time.perf_counter()

        async def one(url: str) -> ClientSocket | None:
            async with gate:
                try:
                    return await open_socket(kind, url, timeout_s, offer_deflate)
                except Exception as error:  # counted, not raised: the run reports failures
                    errors[f"{type(error).__name__}: {str(error)[:120]}"] += 1
                    return None

        tasks = []
        for index, url in enumerate(urls):
            delay = started + index / rate_per_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(url)))
        opened = [s for s in await asyncio.gather(*tasks) if s is not None]
        self.sockets.extend(opened)
        return {
            "opened": len(opened),
            "failed": len(urls) - len(opened),
            "errors": dict(errors.most_common(5)),
            "open_s": round(time.perf_counter() - started, 2),
            "deflate": sum(s.deflate for s in opened),
        }

    async def ping(
        self, count: int, rounds: int, round_s: float, start_wall: float
    ) -> dict[str, Any]:
        """Socket `g` (global index, below `count`) pings at `start + r*round_s + g/count*round_s`
        for each round r, one ping at a time: pings arrive evenly, `count/round_s` a second."""
        loop = asyncio.get_running_loop()
        start = loop.time() + (start_wall - time.time())
        rtts: list[float] = []
        slow_at: list[float] = []  # when (s into the phase) each ping slower than SLOW_MS was sent
        lost: Counter[str] = Counter()

        async def pinger(global_index: int, sock: ClientSocket) -> None:
            for r in range(rounds):
                delay = start + (r + global_index / count) * round_s - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    sent_at = loop.time() - start
                    rtts.append(await ping(sock))
                    if rtts[-1] > SLOW_MS:
                        slow_at.append(round(sent_at, 1))
                except Exception as error:
                    lost[type(error).__name__] += 1

        await asyncio.gather(
            *(
                pinger(self.first + i * self.step, sock)
                for i, sock in enumerate(self.sockets)
                if self.first + i * self.step < count
            )
        )
        return {"rtts_ms": rtts, "slow_at_s": slow_at, "lost": dict(lost)}

    async def status(self) -> dict[str, Any]:
        closes = Counter(str(s.close_code) for s in self.sockets if not s.is_open)
        return {"open": sum(s.is_open for s in self.sockets), "closed": dict(closes)}

    async def close(self) -> dict[str, Any]:
        gate = asyncio.Semaphore(OPEN_IN_FLIGHT)

        async def one(sock: ClientSocket) -> None:
            async with gate:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sock.ws.close(), 10)
                if sock.reader is not None:
                    sock.reader.cancel()

        await asyncio.gather(*(one(s) for s in self.sockets))
        closed = len(self.sockets)
        self.sockets = []
        return {"closed": closed}


def worker_main(pipe: Pipe, first: int, step: int) -> None:
    raise_fd_limit()

    async def serve() -> None:
        # With `--loop-probe`, the clients' own pauses are lined up with the pings too.
        from haven import loop_probe

        loop_probe.start()
        worker = Worker(first, step)
        loop = asyncio.get_running_loop()
        while True:
            command, kwargs = await loop.run_in_executor(None, pipe.recv)
            if command == "stop":
                return
            pipe.send(await getattr(worker, command)(**kwargs))

    asyncio.run(serve())
