"""A WebSocket client on a bare TCP socket, for peers that misbehave on purpose: one that stops
reading, or never answers a ping (a real client library answers pings by itself)."""

from __future__ import annotations

import base64
import secrets
import socket


def silent_client(port: int, target: str, receive_buffer: int | None = 4096) -> socket.socket:
    """Completes the WebSocket handshake for `target` (path and query), then reads or answers
    nothing until the caller does."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    sock.sendall(
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while not response.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError(f"handshake refused: {response!r}")
        response += byte
    if not response.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"handshake refused: {response.splitlines()[0]!r}")
    return sock
