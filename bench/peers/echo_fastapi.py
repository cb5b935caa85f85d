"""The plain FastAPI/uvicorn peer of `bench/sockets.py`: one WebSocket route, nothing else.

    python -m bench.peers.echo_fastapi PORT

`/ws` accepts any client, answers `{"type":"ping"}` with `{"type":"pong"}` and echoes every
other text frame. uvicorn runs it with the WebSocket settings Haven's Serve proxy gets from
`deployments.proxy_hooks` (the websockets-sansio implementation, the frame limit,
permessage-deflate, protocol pings), so the two differ only in what sits behind the socket.
Prints `listening PORT` once it accepts connections.
"""

from __future__ import annotations

import json
import os
import sys

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()
PONG = json.dumps({"type": "pong"})


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            try:
                frame = json.loads(text)
            except ValueError:
                frame = None
            if isinstance(frame, dict) and frame.get("type") == "ping":
                await websocket.send_text(PONG)
            else:
                await websocket.send_text(text)
    except WebSocketDisconnect:
        return


def main(argv: list[str]) -> None:
    import uvicorn

    from deployments.proxy_hooks import proxy_websocket_overrides

    port = int(argv[0]) if argv else 0
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        **proxy_websocket_overrides(os.environ),
    )
    server = uvicorn.Server(config)
    # uvicorn binds inside `serve`; port 0 needs the bound socket to be known, so bind here.
    sock = config.bind_socket()
    print(f"listening {sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1:])
