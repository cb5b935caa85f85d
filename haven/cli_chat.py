"""`haven chat`: log in over REST, pick a session, then chat over the WebSocket.

Each line typed is one `session_message` with a fresh `client_message_id`; the reply streams
as it comes; a `safety_escalation` is shown, framed, as soon as it arrives (before the reply).
After a retryable close the client reconnects with `?last_seq=` and, once the missed events are
replayed (`resumed`), resends every message whose reply it has not seen, with the same
`client_message_id`: the server stores it only once, and runs the turn again if the replica
writing the reply was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import TypeAdapter, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from haven.errors import RETRYABLE_CLOSE_CODES, CloseCode
from haven.escalations import Refused
from haven.protocol import (
    AssistantMessageChunk,
    AssistantMessageComplete,
    AssistantMessageStart,
    Auth,
    Connection,
    ErrorEvent,
    Resumed,
    SafetyEscalation,
    ServerEvent,
    ServerEventBase,
    SessionMessage,
    TokenExpiring,
    UserMessageEvent,
)

ABNORMAL_CLOSE = 1006  # the connection dropped without a close frame: worth another try
MAX_RETRIES = 5
# How long the end of input waits for the replies still being written.
END_WAIT_S = 180.0
_events: TypeAdapter[ServerEventBase] = TypeAdapter(ServerEvent)


def parse_event(raw: str | bytes) -> ServerEventBase | None:
    """One server frame as its model; None for a type this client does not know."""
    try:
        return _events.validate_json(raw)
    except ValidationError:
        return None


class Renderer:
    """Turns server events into terminal text, in the order they arrive."""

    def __init__(self) -> None:
        self._streamed: set[str] = set()  # replies whose chunks were shown
        self._done: set[str] = set()  # replies shown in full

    def render(self, event: ServerEventBase) -> str:
        if isinstance(event, SafetyEscalation):
            r = event.emergency_resources
            bar = "!" * 72
            return (
                f"\n{bar}\n!! You are not alone. Please reach out now:\n"
                f"!!   Call {r.crisis_hotline}   |   Text {r.crisis_text}\n!! {r.message}\n{bar}\n"
            )
        if isinstance(event, AssistantMessageStart):
            return "" if event.message_id in self._done else "haven> "
        if isinstance(event, AssistantMessageChunk):
            if event.message_id in self._done:
                return ""
            self._streamed.add(event.message_id)
            return event.chunk
        if isinstance(event, AssistantMessageComplete):
            return self._complete(event)
        if isinstance(event, ErrorEvent):
            after = f", retry after {event.retry_after}s" if event.retry_after else ""
            return f"\n[error {event.code}] {event.message}{after}\n"
        if isinstance(event, Resumed) and not event.recovered:
            return "[some events were missed and are no longer kept]\n"
        return ""

    def _complete(self, event: AssistantMessageComplete) -> str:
        reply_id, message = event.message_id, event.message
        if reply_id in self._done:
            return ""
        self._done.add(reply_id)
        if reply_id not in self._streamed:
            return f"haven> {message.text}\n"  # replayed or resent: the chunks were not shown
        if message.status == "replaced":
            return f"\n[that reply was withdrawn; instead:]\nhaven> {message.text}\n"
        if message.status == "cancelled":
            return " [stopped]\n"
        return "\n"


def _error_text(response: httpx.Response) -> str:
    """`[code] detail` from Haven's error body, or the field problems of a 422."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    detail = body.get("detail", "") if isinstance(body, dict) else ""
    if isinstance(detail, list):  # request validation: one entry per field problem
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    code = body.get("code", response.status_code) if isinstance(body, dict) else ""
    return f"[{code}] {detail}"


class ChatClient:
    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        out: TextIO,
        retry_delay_s: float = 1.0,
    ) -> None:
        self._retry_delay_s = retry_delay_s
        self._rest = httpx.AsyncClient(base_url=base_url, timeout=30)
        parts = urlsplit(base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        self._ws_url = urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", "", ""))
        self._username, self._password, self._out = username, password, out
        self._token = ""
        self._last_seq: int | None = None
        # Sent messages without a complete reply yet, oldest first, by client_message_id.
        self._unanswered: dict[str, SessionMessage] = {}
        # Of those, the ones the server has stored (echoed): the user's turns run in order, so
        # the next complete reply of the session answers the oldest of them.
        self._echoed: list[str] = []
        self._session_id = ""
        # Messages sent whose turn has not ended (a complete reply or an error) yet.
        self._open_turns = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._renderer = Renderer()

    async def aclose(self) -> None:
        await self._rest.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._token:
            kwargs["headers"] = {"Authorization": f"Bearer {self._token}"}
        try:
            response = await self._rest.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise Refused(
                f"cannot reach {self._rest.base_url} ({type(error).__name__})", 1
            ) from None
        if response.is_error:
            raise Refused(f"{method} {path}: {_error_text(response)}", 1)
        return response.json() if response.content else None

    async def register(self, locale: str | None) -> None:
        body = {"username": self._username, "password": self._password, "locale": locale}
        await self._call("POST", "/auth/register", json=body)

    async def login(self) -> None:
        self._token = ""
        body = {"username": self._username, "password": self._password}
        self._token = (await self._call("POST", "/auth/login", json=body))["access_token"]

    async def pick_session(
        self, session_id: str | None, new: bool, lines: asyncio.Queue[str | None]
    ) -> str:
        if session_id:
            return session_id
        sessions = [] if new else await self._call("GET", "/sessions")
        if sessions:
            for i, s in enumerate(sessions, 1):
                self._print(f"  {i}. {s['id']}  (started {s['created_at']})\n")
            self._print("Session number, or Enter for a new one: ")
            choice = (await lines.get() or "").strip()
            if choice.isdigit() and 1 <= int(choice) <= len(sessions):
                return str(sessions[int(choice) - 1]["id"])
        return str((await self._call("POST", "/sessions"))["id"])

    def _print(self, text: str) -> None:
        if text:
            self._out.write(text)
            self._out.flush()

    async def run(self, session_id: str, lines: asyncio.Queue[str | None]) -> int:
        """Chat until end of input (0) or a terminal close (1)."""
        self._session_id = session_id
        retries = 0
        while True:
            url = self._ws_url
            if self._last_seq is not None:
                url += f"?last_seq={self._last_seq}"
            headers = {"Authorization": f"Bearer {self._token}"}
            try:
                async with connect(url, additional_headers=headers) as ws:
                    if self._last_seq is None:
                        # Nothing to replay first: resend at once.
                        await self._resend(ws)
                    if await self._converse(ws, session_id, lines):
                        return 0
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else ABNORMAL_CLOSE
                if not RETRYABLE_CLOSE_CODES.get(code, code == ABNORMAL_CLOSE):
                    self._print(f"\n[disconnected: close code {code}; not retrying]\n")
                    return 1
                self._print(f"\n[disconnected: close code {code}; reconnecting]\n")
                if code == CloseCode.TOKEN_EXPIRED:
                    await self.login()
            except (OSError, InvalidHandshake) as error:
                self._print(f"[cannot connect to {self._ws_url}: {type(error).__name__}]\n")
            retries += 1
            if retries > MAX_RETRIES:
                return 1
            await asyncio.sleep(min(self._retry_delay_s * 2**retries, 30))

    async def _converse(
        self, ws: ClientConnection, session_id: str, lines: asyncio.Queue[str | None]
    ) -> bool:
        """True at end of input; raises ConnectionClosed when the socket closes."""
        reader = asyncio.create_task(self._read(ws))
        try:
            while True:
                line_task = asyncio.create_task(lines.get())
                await asyncio.wait({reader, line_task}, return_when=asyncio.FIRST_COMPLETED)
                if reader.done():
                    line_task.cancel()
                    reader.result()  # raises ConnectionClosed
                    return False
                line = line_task.result()
                if line is None:
                    # End of input (Ctrl-D, or a piped file): show the replies still coming.
                    idle = asyncio.create_task(self._idle.wait())
                    await asyncio.wait(
                        {reader, idle}, timeout=END_WAIT_S, return_when=asyncio.FIRST_COMPLETED
                    )
                    idle.cancel()
                    await ws.close()
                    return True
                if line.strip():
                    frame = SessionMessage(
                        type="session_message",
                        session_id=session_id,
                        message_text=line,
                        client_message_id=uuid.uuid4().hex,
                    )
                    self._unanswered[str(frame.client_message_id)] = frame
                    self._open_turns += 1
                    self._idle.clear()
                    await ws.send(frame.model_dump_json(exclude_none=True))
        finally:
            reader.cancel()

    async def _resend(self, ws: ClientConnection) -> None:
        for pending in list(self._unanswered.values()):
            await ws.send(pending.model_dump_json(exclude_none=True))

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            event = parse_event(raw)
            if event is None:
                continue
            if event.seq is not None:
                self._last_seq = max(event.seq, self._last_seq or 0)
            if isinstance(event, UserMessageEvent):
                cmid = event.client_message_id
                if cmid is not None and cmid in self._unanswered and cmid not in self._echoed:
                    self._echoed.append(cmid)
            elif isinstance(event, Resumed):
                await self._resend(ws)
            if isinstance(event, AssistantMessageComplete) and self._echoed:
                if event.session_id == self._session_id:
                    self._unanswered.pop(self._echoed.pop(0), None)
            if isinstance(event, AssistantMessageComplete | ErrorEvent):
                self._open_turns = max(0, self._open_turns - 1)
                if self._open_turns == 0:
                    self._idle.set()
            elif isinstance(event, TokenExpiring):
                await self.login()
                await ws.send(Auth(type="auth", token=self._token).model_dump_json())
            elif isinstance(event, Connection) and self._last_seq is None:
                self._print(f"[connected as {self._username}; type a message, Ctrl-D to quit]\n")
            self._print(self._renderer.render(event))
        raise ConnectionClosed(ws.protocol.close_rcvd, ws.protocol.close_sent)


def _stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Lines of stdin, then None at end of input; read by a daemon thread so exit never waits."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def pump() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\n"))
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    return queue


async def _chat(args: argparse.Namespace, username: str, password: str) -> int:
    client = ChatClient(args.url, username, password, sys.stdout)
    try:
        if args.register:
            await client.register(args.locale)
        await client.login()
        lines = _stdin_lines(asyncio.get_running_loop())
        session_id = await client.pick_session(args.session, args.new, lines)
        print(f"[session {session_id}]")
        return await client.run(session_id, lines)
    finally:
        await client.aclose()


def chat(args: argparse.Namespace, password: Callable[[str], str]) -> int:
    """Ctrl-D (end of input) and Ctrl-C both end the chat with status 0."""
    try:
        # Asked before the event loop starts: getpass and the stdin reader never compete.
        username = args.username or input("Username: ").strip()
        secret = password("Password: ")
        return asyncio.run(_chat(args, username, secret))
    except (KeyboardInterrupt, EOFError):
        print()
        return 0
