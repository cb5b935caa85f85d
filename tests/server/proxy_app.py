"""A bare ASGI app behind uvicorn with the proxy's WebSocket limits, as a Serve proxy runs them.

    python -m tests.server.proxy_app PORT

`/vanish` ends without closing the socket; `/flood` writes 32 MiB as fast as the server lets it, then reports how long the writes took and
how the socket ended; `/echo` echoes text frames; `/wait` reports when the socket ends. Reports
are JSON lines on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import uvicorn

from deployments.proxy_hooks import limit_proxy_websockets

FLOOD_FRAMES = 2048
FLOOD_FRAME = "x" * 16384


def report(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    path = scope["path"]
    started = time.monotonic()
    if path == "/vanish":
        return  # as the Serve proxy's app does when the replica behind the socket dies
    if path == "/flood":
        for _ in range(FLOOD_FRAMES):
            await send({"type": "websocket.send", "text": FLOOD_FRAME})
        report(path=path, sent_s=round(time.monotonic() - started, 3))
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            elapsed = round(time.monotonic() - started, 3)
            report(path=path, disconnect=message.get("code"), after_s=elapsed)
            return
        if path == "/echo":
            await send({"type": "websocket.send", "text": message.get("text") or ""})


def main() -> None:
    limit_proxy_websockets()
    # Built like Serve's proxy builds it: no ws_* arguments, so the hook's defaults apply.
    config = uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
