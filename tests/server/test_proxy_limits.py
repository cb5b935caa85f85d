"""The proxy's WebSocket limits on a real uvicorn server and real sockets (no Ray)."""

from __future__ import annotations

import json
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.paths import ROOT
from tests.raw_socket import silent_client

LIMIT = 256 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ProxyApp:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.server.proxy_app", str(self.port)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            text=True,
        )
        self.reports: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._wait_listening()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.reports.put(json.loads(line))

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("the proxy app did not start")

    def report(self, path: str, key: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            item = self.reports.get(timeout=max(0.01, deadline - time.monotonic()))
            if item["path"] == path and key in item:
                return item

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _running(env: dict[str, str]) -> Iterator[ProxyApp]:
    app = ProxyApp({"HAVEN_OUTBOUND_QUEUE_BYTES": str(LIMIT), **env})
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture
def proxy_app() -> Iterator[ProxyApp]:
    # Pings off: a client that stops reading cannot answer them either, and the ping timeout
    # would drop it before the queue limit is reached.
    yield from _running({"HAVEN_WS_PING_INTERVAL_S": "0"})


@pytest.fixture
def pinging_app() -> Iterator[ProxyApp]:
    yield from _running({"HAVEN_WS_PING_INTERVAL_S": "0.5", "HAVEN_WS_PING_TIMEOUT_S": "1"})


def test_client_that_stops_reading_is_closed_4009_without_stalling_the_writer(
    proxy_app: ProxyApp,
) -> None:
    sock = silent_client(proxy_app.port, "/flood")
    # Nothing reads: 32 MiB can only end in the proxy's write buffer, whose limit is 256 KiB.
    try:
        sent = proxy_app.report("/flood", "sent_s")
        ended = proxy_app.report("/flood", "disconnect")
    finally:
        sock.close()
    # Writing never waited on the client that does not read.
    assert sent["sent_s"] < 10
    assert ended["disconnect"] == 4009


def test_other_sockets_keep_their_pace_while_one_client_is_slow(proxy_app: ProxyApp) -> None:
    slow = silent_client(proxy_app.port, "/flood")
    try:
        with connect(f"ws://127.0.0.1:{proxy_app.port}/echo", open_timeout=10) as fast:
            for index in range(50):
                fast.send(f"hello {index}")
                assert fast.recv(timeout=5) == f"hello {index}"
        assert proxy_app.report("/flood", "disconnect")["disconnect"] == 4009
    finally:
        slow.close()


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("closed mid-frame")
        data += chunk
    return data


def _close_code(sock: socket.socket) -> int | None:
    """Reads server frames until the close frame; its code, or None if the socket was dropped."""
    try:
        while True:
            head = _read_exact(sock, 2)
            size = head[1] & 0x7F
            if size == 126:
                size = struct.unpack("!H", _read_exact(sock, 2))[0]
            elif size == 127:
                size = struct.unpack("!Q", _read_exact(sock, 8))[0]
            payload = _read_exact(sock, size)
            if head[0] & 0x0F == 0x8:
                code: int = struct.unpack("!H", payload[:2])[0]
                return code
    except (ConnectionResetError, OSError):
        return None


def test_slow_client_sees_the_4009_close_once_it_reads_again(proxy_app: ProxyApp) -> None:
    sock = silent_client(proxy_app.port, "/flood", receive_buffer=None)
    try:
        assert proxy_app.report("/flood", "disconnect")["disconnect"] == 4009
        sock.settimeout(10)
        # What was written before the limit arrives in order, then the close frame.
        assert _close_code(sock) == 4009
    finally:
        sock.close()


def test_peer_that_does_not_answer_pings_is_dropped(pinging_app: ProxyApp) -> None:
    sock = silent_client(pinging_app.port, "/wait")
    try:
        ended = pinging_app.report("/wait", "disconnect", timeout=15)
    finally:
        sock.close()
    assert ended["after_s"] < 5


def test_peer_that_answers_pings_stays_connected(pinging_app: ProxyApp) -> None:
    with connect(f"ws://127.0.0.1:{pinging_app.port}/echo", open_timeout=10) as ws:
        time.sleep(3)  # several ping intervals
        ws.send("still here")
        assert ws.recv(timeout=5) == "still here"


def test_socket_whose_app_ends_without_closing_gets_1012(proxy_app: ProxyApp) -> None:
    with connect(f"ws://127.0.0.1:{proxy_app.port}/vanish", open_timeout=10) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
