"""A client that keeps chatting through the loss of a node, the way docs/protocol.md asks.

One thread per person: send a message, read until its reply completes, send the next. When the
socket closes with a retryable code (or the handshake fails while the cluster recovers) it
reconnects with `?last_seq=` (the highest `seq` it has), reads the replay up to `resumed`, and
resends the message in flight if its reply has not been seen, with the same `client_message_id`
(the server stores it once and runs or repeats its turn). It records everything it saw, so the
test can check that nothing was lost or reordered.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection

from haven.errors import CloseCode
from tests.integration.conftest import Server

# Closes after which reconnecting cannot help (docs/protocol.md, "Close codes").
TERMINAL_CLOSES = {
    CloseCode.POLICY_VIOLATION,
    CloseCode.INVALID_TOKEN,
    CloseCode.TOO_MANY_CONNECTIONS,
    CloseCode.LOGGED_OUT,
}
# A reply streams a piece every fraction of a second; this much silence means a stuck socket.
SILENCE_S = 30.0
RECONNECT_PAUSE_S = 0.5


class TerminalClose(AssertionError):
    pass


@dataclass(frozen=True)
class Seen:
    """One numbered event as the client received it."""

    seq: int
    type: str
    socket: int  # 1 for the first socket, 2 for the one after the first reconnect, ...
    replayed: bool  # between `connection` and `resumed` of a resuming socket
    event: dict[str, Any]


class ResilientChat(threading.Thread):
    def __init__(
        self, server: Server, name: str, token: str, session_id: str, messages: int
    ) -> None:
        super().__init__(name=f"chat-{name}", daemon=True)
        self.server, self.token, self.session_id = server, token, session_id
        self.outgoing = [
            (f"{name}-{n}", f"{name} says: message {n} of {messages}") for n in range(messages)
        ]
        self.deadline = time.monotonic() + 240
        self.seen: list[Seen] = []
        # client_message_id -> the reply message ids seen in `assistant_message_complete`.
        self.replies: dict[str, set[str]] = defaultdict(set)
        self.closes: list[int | None] = []
        self.failed_attempts = 0  # handshakes refused or dropped while the cluster recovered
        self.resends = 0
        self.stalls = 0
        self.in_flight: str | None = None  # the message waiting for its reply
        self.error: BaseException | None = None
        self._last_seq = 0
        self._sockets = 0
        self._turn_of: str | None = None  # the client_message_id of the latest user_message

    @property
    def answered(self) -> int:
        return sum(1 for cmid, _ in self.outgoing if self.replies[cmid])

    def run(self) -> None:
        try:
            self._chat()
        except BaseException as error:  # reported by the test, with the thread's name
            self.error = error

    def _chat(self) -> None:
        ws = self._connect(resume=False)
        for cmid, text in self.outgoing:
            self.in_flight = cmid
            ws = self._send(ws, cmid, text)
            while not self.replies[cmid]:
                try:
                    event = json.loads(ws.recv(timeout=SILENCE_S))
                except TimeoutError:
                    self.stalls += 1
                    ws.close()
                    ws = self._reconnect(cmid, text)
                    continue
                except ConnectionClosed as closed:
                    self._closed(closed)
                    ws = self._reconnect(cmid, text)
                    continue
                self._record(event, replayed=False)
                if event["type"] == "error":
                    ws = self._on_error(ws, event, cmid, text)
        self.in_flight = None
        ws.close()

    def _send(self, ws: ClientConnection, cmid: str, text: str) -> ClientConnection:
        frame = {
            "type": "session_message",
            "session_id": self.session_id,
            "message_text": text,
            "client_message_id": cmid,
        }
        try:
            ws.send(json.dumps(frame))
        except ConnectionClosed as closed:
            # The reconnect resends it.
            self._closed(closed)
            return self._reconnect(cmid, text)
        return ws

    def _on_error(
        self, ws: ClientConnection, event: dict[str, Any], cmid: str, text: str
    ) -> ClientConnection:
        if not event["retryable"]:
            raise AssertionError(f"{self.name}: terminal error {event}")
        if self.replies[cmid]:
            return ws
        # A turn that failed (its host went away, a model call failed) is retried with the
        # same id: the stored message is not stored again.
        time.sleep(float(event.get("retry_after") or 1.0))
        self.resends += 1
        return self._send(ws, cmid, text)

    def _closed(self, closed: ConnectionClosed) -> None:
        code = closed.rcvd.code if closed.rcvd is not None else None
        self.closes.append(code)
        if code in TERMINAL_CLOSES:
            raise TerminalClose(f"{self.name}: terminal close {code}")

    def _connect(self, *, resume: bool) -> ClientConnection:
        """A registered socket; when resuming, its replay has been read up to `resumed`."""
        while True:
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"{self.name}: could not reconnect in time")
            query = f"&last_seq={self._last_seq}" if resume else ""
            try:
                ws = self.server.ws(self.token, query)
                first = json.loads(ws.recv(timeout=SILENCE_S))
                if first["type"] != "connection":
                    raise AssertionError(f"{self.name}: first event {first}")
                self._sockets += 1
                while resume:
                    event = json.loads(ws.recv(timeout=SILENCE_S))
                    self._record(event, replayed=event["type"] != "resumed")
                    if event["type"] == "resumed":
                        break
                return ws
            except ConnectionClosed as closed:
                # e.g. `internal_error` and 1012: the user's host was not reachable yet.
                self._closed(closed)
            except (OSError, InvalidStatus, TimeoutError):
                self.failed_attempts += 1
            time.sleep(RECONNECT_PAUSE_S)

    def _reconnect(self, cmid: str, text: str) -> ClientConnection:
        ws = self._connect(resume=True)
        if self.replies[cmid]:
            return ws  # the replay held the reply
        self.resends += 1
        return self._send(ws, cmid, text)

    def _record(self, event: dict[str, Any], *, replayed: bool) -> None:
        if "seq" in event:
            self._last_seq = max(self._last_seq, event["seq"])
            self.seen.append(Seen(event["seq"], event["type"], self._sockets, replayed, event))
        if event["type"] == "user_message":
            self._turn_of = event.get("client_message_id")
        elif event["type"] == "assistant_message_complete" and self._turn_of is not None:
            # One message in flight per person, and a user's turns run in order: a completion
            # answers the latest user_message before it.
            self.replies[self._turn_of].add(event["message_id"])
