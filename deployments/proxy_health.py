"""`/readyz` and `/healthz` from the moment the Serve proxy's port is open.

Until the Gateway is deployed the proxy has no route for them and answers 404 ("Path '/readyz'
not found"); while the Gateway's first replica starts, a request waits without an answer. A
script or load balancer waiting for readiness by status or body could be fooled by either. In
the proxy (`proxy_hooks.limit_proxy_websockets` installs this middleware), such answers become:

- `/readyz`: 503 `{"status": "starting"}`: not ready for traffic yet.
- `/healthz`: 200 `{"status": "ok"}`: the process serving HTTP is alive; do not restart it.

Once the Gateway answers, its own answers pass through unchanged (`deployments.rest`).
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

# The Gateway's own /readyz waits up to 10 s for the models; a little longer than that here.
ANSWER_WITHIN_S = 12.0
# How long a request answered "starting" may still wait for the Gateway in the background.
DETACHED_FOR_S = 120.0
STARTING: dict[str, tuple[int, dict[str, str]]] = {
    "/readyz": (503, {"status": "starting"}),
    "/healthz": (200, {"status": "ok"}),
}


async def _answer(send: Send, status: int, body: dict[str, str]) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class HealthBeforeStart:
    def __init__(self, app: ASGIApp, answer_within_s: float = ANSWER_WITHIN_S) -> None:
        self._app = app
        self._answer_within_s = answer_within_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        starting = STARTING.get(scope.get("path", "")) if scope["type"] == "http" else None
        if starting is None:
            await self._app(scope, receive, send)
            return
        not_routed = started = expired = False

        async def guarded(message: Message) -> None:
            nonlocal not_routed, started
            if expired:
                return  # the answer below went out instead
            if message["type"] == "http.response.start":
                not_routed = message["status"] == 404
                started = not not_routed
            if not not_routed:
                await send(message)

        async def held_open() -> Message:
            message = await receive()
            if expired and message["type"] == "http.disconnect":
                # Our answer ended the client's request; the proxy must not take that for a
                # client that left (it logs a cancelled request as an error). It waits until
                # the Gateway answers, or the task is cancelled below.
                await asyncio.Event().wait()
            return message

        task = asyncio.ensure_future(self._app(scope, held_open, guarded))
        done, _ = await asyncio.wait({task}, timeout=self._answer_within_s)
        if done:
            task.result()
        elif started:
            await task  # an answer is on its way; let it finish
        else:
            # Not cancelled (Serve's proxy logs a cancelled request as an error): it runs on
            # until the Gateway answers, and whatever it sends from now on is dropped.
            expired = not_routed = True
            _detached.add(task)
            task.add_done_callback(_forget)
            # A Gateway that never answers must not hold the request for ever.
            asyncio.get_running_loop().call_later(DETACHED_FOR_S, task.cancel)
        if not_routed:
            await _answer(send, *starting)


# Requests answered "starting" while they still wait for the Gateway (kept from the GC).
_detached: set[asyncio.Future[None]] = set()


def _forget(task: asyncio.Future[None]) -> None:
    _detached.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.debug("a detached health request failed", exc_info=task.exception())
