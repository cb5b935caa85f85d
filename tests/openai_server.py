"""An OpenAI-compatible chat-completions server on loopback, scripted per request, for tests.

It speaks what vLLM, llama.cpp and OpenAI speak: `POST /v1/chat/completions` with
`"stream": true` answers server-sent events, `data: {chat.completion.chunk}` per piece, then
`data: [DONE]`. Each request takes the next `Script` (or the default one) to decide how to
misbehave: an error status, a slow or stalled stream, a connection dropped mid-reply.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send


@dataclass(frozen=True)
class Script:
    """What the server does with one request."""

    pieces: Sequence[str] = ("I hear you. ", "That sounds ", "really hard.")
    status: int = 200
    delay_s: float = 0.0  # before each piece
    first_delay_s: float = 0.0  # before the first piece, after the headers
    drop_after: int | None = None  # pieces sent before the connection is dropped
    stall_at: int | None = None  # pieces sent before a silence of `stall_s`
    stall_s: float = 0.0
    finish_reason: str | None = "stop"  # None: no closing chunk, as if cut by a proxy


class DropConnection(Exception):
    """Raised inside a streaming response: the server closes the socket mid-body."""


@dataclass
class Record:
    """What the server saw, readable from the test's thread."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    completed: int = 0
    disconnects: int = 0
    active: int = 0
    max_active: int = 0
    disconnected: threading.Event = field(default_factory=threading.Event)
    disconnected_at: float | None = None


class FakeOpenAIServer:
    def __init__(self, default: Script | None = None) -> None:
        self.default = default or Script()
        self.scripts: deque[Script] = deque()
        self.record = Record()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        app = Starlette(routes=[Route("/v1/chat/completions", self._complete, methods=["POST"])])
        config = uvicorn.Config(
            app,
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            log_level="critical",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def then(self, *scripts: Script) -> None:
        """The next requests follow `scripts`, in order; later ones the default."""
        self.scripts.extend(scripts)

    async def _complete(self, request: Request) -> Response:
        body = await request.json()
        self.record.requests.append(body)
        self.record.headers.append(dict(request.headers))
        script = self.scripts.popleft() if self.scripts else self.default
        if script.status != 200:
            error = {"message": f"scripted {script.status}", "type": "server_error"}
            return JSONResponse({"error": error}, status_code=script.status)
        return _EventStream(self, script, model=str(body.get("model", "")))


class _EventStream(Response):
    """The streamed reply; watches for the client going away while it streams."""

    def __init__(self, server: FakeOpenAIServer, script: Script, model: str) -> None:
        super().__init__(media_type="text/event-stream")
        self._server, self._script, self._model = server, script, model

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        record, script = self._server.record, self._script
        gone = asyncio.Event()

        async def watch() -> None:
            # After the request body, the next message is the disconnect (or the end).
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        record.active += 1
        record.max_active = max(record.max_active, record.active)
        try:
            headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send(self._event({"role": "assistant", "content": ""}, None))
            if not await self._pause(script.first_delay_s, gone):
                return
            for index, piece in enumerate(script.pieces):
                if index == script.drop_after:
                    raise DropConnection
                pause = script.delay_s + (script.stall_s if index == script.stall_at else 0.0)
                if not await self._pause(pause, gone):
                    return
                await send(self._event({"content": piece}, None))
            if script.finish_reason is not None:
                await send(self._event({}, script.finish_reason))
            await send(_body(b"data: [DONE]\n\n"))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            record.completed += 1
        finally:
            record.active -= 1
            watcher.cancel()

    async def _pause(self, seconds: float, gone: asyncio.Event) -> bool:
        """Waits `seconds`; False (and recorded) if the client disconnected meanwhile."""
        if not gone.is_set() and seconds > 0:
            try:
                await asyncio.wait_for(gone.wait(), timeout=seconds)
            except TimeoutError:
                pass
        if gone.is_set():
            record = self._server.record
            record.disconnects += 1
            record.disconnected_at = time.perf_counter()
            record.disconnected.set()
            return False
        return True

    def _event(self, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        chunk = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        return _body(f"data: {json.dumps(chunk)}\n\n".encode())


def _body(data: bytes) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": True}
