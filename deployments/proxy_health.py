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

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The Gateway's own /readyz waits up to 10 s for the models; a little longer than that here.
ANSWER_WITHIN_S = 12.0
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
        not_routed = started = False

        async def guarded(message: Message) -> None:
            nonlocal not_routed, started
            if message["type"] == "http.response.start":
                not_routed = message["status"] == 404
                started = not not_routed
            if not not_routed:
                await send(message)

        try:
            await asyncio.wait_for(self._app(scope, receive, guarded), self._answer_within_s)
        except TimeoutError:
            if started:
                return  # an answer is half sent; nothing better can follow
            not_routed = True
        if not_routed:
            await _answer(send, *starting)
