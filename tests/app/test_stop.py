"""A stopping Gateway closes every socket with 1012 "service restart", after the frames already
queued for it, and a reply in flight is still stored."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Awaitable, Callable
from contextlib import ExitStack

from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from deployments.gateway import create_app
from tests.app.conftest import Harness
from tests.app.wire import send, until
from tests.conftest import SQLITE_ONLY
from tests.fakes import SLOW, FakeGenerator

pytestmark = SQLITE_ONLY


def _stoppable(harness: Harness) -> tuple[TestClient, threading.Event]:
    stop_now = threading.Event()

    async def watch(on_stop: Callable[[], Awaitable[None]]) -> None:
        await asyncio.to_thread(stop_now.wait)
        await on_stop()

    services = dataclasses.replace(harness.services, open_sockets=set())
    return TestClient(create_app(services, watch_stop=watch)), stop_now


def test_a_stop_closes_every_socket_with_1012_and_its_reason(harness: Harness) -> None:
    token = harness.register("ana")
    client, stop_now = _stoppable(harness)
    with client, ExitStack() as stack:
        sockets = [
            stack.enter_context(client.websocket_connect(f"/ws?token={token}")) for _ in range(2)
        ]
        for ws in sockets:
            assert ws.receive_json()["type"] == "connection"
        stop_now.set()
        for ws in sockets:
            try:
                while True:
                    ws.receive_json()
            except WebSocketDisconnect as closed:
                assert (closed.code, closed.reason) == (1012, "service restart")


def test_a_reply_in_flight_at_the_stop_is_stored(harness: Harness) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    client, stop_now = _stoppable(harness)
    with client:  # the turns run on this app's loop: it stays up while the reply is written
        with client.websocket_connect(f"/ws?token={token}") as ws:
            send(ws, session_id, f"{SLOW} a long day")
            until(ws, "assistant_message_start")
            stop_now.set()
            try:
                while True:
                    ws.receive_json()
            except WebSocketDisconnect as closed:
                assert closed.code == 1012
        for _ in range(100):
            stored = harness.messages(token, session_id)
            if len(stored) == 2:
                break
            threading.Event().wait(0.05)
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["text"] == FakeGenerator.full_text()
