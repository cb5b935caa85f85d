"""Socket helpers shared by the app tests."""

from __future__ import annotations

import re
from typing import Any

from starlette.testclient import WebSocketTestSession

from tests.app.conftest import Harness

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def connect(harness: Harness, token: str, query: str = "") -> WebSocketTestSession:
    return harness.client.websocket_connect(f"/ws?token={token}{query}")


def until(ws: WebSocketTestSession, event_type: str) -> list[dict[str, Any]]:
    """Every event up to and including the first of `event_type`."""
    events: list[dict[str, Any]] = []
    while True:
        event = ws.receive_json()
        assert TIMESTAMP.match(event["timestamp"]), event
        events.append(event)
        if event["type"] == event_type:
            return events


def send(
    ws: WebSocketTestSession, session_id: str, text: str, client_message_id: str | None = None
) -> None:
    frame: dict[str, Any] = {"type": "session_message", "session_id": session_id}
    frame["message_text"] = text
    if client_message_id is not None:
        frame["client_message_id"] = client_message_id
    ws.send_json(frame)
