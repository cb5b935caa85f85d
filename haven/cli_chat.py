"""`haven chat`: log in over REST, pick a session, then chat over the WebSocket.

Each line typed is one `session_message` with a fresh `client_message_id`; the reply streams
as it comes; a `safety_escalation` is shown, framed, as soon as it arrives (before the reply).
After a retryable close the client reconnects with `?last_seq=` and, once the missed events are
replayed (`resumed`), resends every message whose reply it has not seen, with the same
`client_message_id`: the server stores it only once, and runs the turn again if the replica
writing the reply was lost.

The person is kept informed on a quiet status line (`cli_render.Screen`): "…" while a reply is
awaited, "reconnecting…" then "reconnected" across a lost connection, and "sending again"
when a turn failed on the server's side and the client resends it by itself.
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

from haven.cli_render import Renderer, Screen, terminal_width
from haven.cli_sessions import pick_session
from haven.errors import RETRYABLE_CLOSE_CODES, CloseCode, GenerationFailed, SafetyUnavailable
from haven.escalations import Refused
from haven.protocol import (
    AssistantMessageComplete,
    Auth,
    Connection,
    ErrorEvent,
    Resumed,
    ServerEvent,
    ServerEventBase,
    SessionMessage,
    TokenExpiring,
    UserMessageEvent,
)

__all__ = ["ChatClient", "Renderer", "chat", "parse_event"]

ABNORMAL_CLOSE = 1006  # the connection dropped without a close frame: worth another try
# Failed connects in a row before giving up: with the back-off (2 s doubling, at most 30 s)
# about three minutes, long enough for `make serve` to restart.
MAX_RETRIES = 8
# A turn that failed on the server's side, after which sending the same message again is
# what the error asks for; done for the person, at most this many times per message.
RESEND_CODES = frozenset({GenerationFailed.code, SafetyUnavailable.code})
MAX_AUTO_RESENDS = 2
# Silence while a reply is awaited before the status line shows that it is.
WAITING_AFTER_S = 1.0
# How long the end of input waits for the replies still being written.
END_WAIT_S = 180.0
_events: TypeAdapter[ServerEventBase] = TypeAdapter(ServerEvent)


def parse_event(raw: str | bytes) -> ServerEventBase | None:
    """One server frame as its model; None for a type this client does not know."""
    try:
        return _events.validate_json(raw)
    except ValidationError:
        return None


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
        self._renderer = Renderer(terminal_width(out))
        self._screen = Screen(out)
        self._last_event_at = 0.0  # loop time of the last server event
        self._resends: dict[str, int] = {}  # client_message_id -> automatic resends so far
        self._reconnecting = False

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
        """The session to chat in (`haven.cli_sessions.pick_session`)."""
        return await pick_session(self._call, self._print, session_id, new, lines)

    def _print(self, text: str) -> None:
        self._screen.write(text)

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
                    retries = 0
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
                if code == CloseCode.TOKEN_EXPIRED:
                    await self.login()
            except (OSError, InvalidHandshake) as error:
                if retries >= MAX_RETRIES:
                    self._print(f"[cannot connect to {self._ws_url}: {type(error).__name__}]\n")
            # One quiet line however many tries it takes; "reconnected" once it worked.
            self._reconnecting = True
            self._screen.status("reconnecting…")
            retries += 1
            if retries > MAX_RETRIES:
                return 1
            await asyncio.sleep(min(self._retry_delay_s * 2**retries, 30))

    async def _converse(
        self, ws: ClientConnection, session_id: str, lines: asyncio.Queue[str | None]
    ) -> bool:
        """True at end of input; raises ConnectionClosed when the socket closes."""
        reader = asyncio.create_task(self._read(ws))
        ticker = asyncio.create_task(self._show_waiting())
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
                    self._turn_opened()
                    await ws.send(frame.model_dump_json(exclude_none=True))
        finally:
            reader.cancel()
            ticker.cancel()

    def _turn_opened(self) -> None:
        self._open_turns += 1
        self._idle.clear()
        self._last_event_at = asyncio.get_running_loop().time()

    async def _show_waiting(self) -> None:
        """ "…" on the status line while a reply is awaited and nothing has come for a second."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(WAITING_AFTER_S / 4)
            if self._open_turns and loop.time() - self._last_event_at >= WAITING_AFTER_S:
                self._screen.status("…")

    async def _resend_after_failure(self, ws: ClientConnection, event: ErrorEvent) -> None:
        """Sends the oldest unanswered message again after a failure on the server's side that
        asks for exactly that, telling the person so."""
        if event.code not in RESEND_CODES or not event.retryable or not self._echoed:
            return
        cmid = self._echoed[0]
        pending = self._unanswered.get(cmid)
        if pending is None or self._resends.get(cmid, 0) >= MAX_AUTO_RESENDS:
            return
        self._resends[cmid] = self._resends.get(cmid, 0) + 1
        interrupted = "the reply was interrupted" if self._renderer.writing else "that failed"
        self._print(f"[{interrupted} — sending again]\n")
        self._renderer.writing = None
        await asyncio.sleep(max(event.retry_after or 0, self._retry_delay_s))
        self._turn_opened()
        await ws.send(pending.model_dump_json(exclude_none=True))

    async def _resend(self, ws: ClientConnection) -> None:
        for pending in list(self._unanswered.values()):
            await ws.send(pending.model_dump_json(exclude_none=True))

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            event = parse_event(raw)
            if event is None:
                continue
            self._last_event_at = asyncio.get_running_loop().time()
            if event.seq is not None:
                self._last_seq = max(event.seq, self._last_seq or 0)
            if isinstance(event, UserMessageEvent):
                cmid = event.client_message_id
                if cmid is not None and cmid in self._unanswered and cmid not in self._echoed:
                    self._echoed.append(cmid)
            elif isinstance(event, Resumed):
                await self._resend(ws)
            # With a counsellor in the conversation the assistant does not reply: the stored
            # message is the end of the turn.
            handed_over = (
                isinstance(event, UserMessageEvent)
                and event.session_id == self._session_id
                and self._renderer.counsellor_in(event.session_id)
            )
            if (isinstance(event, AssistantMessageComplete) or handed_over) and self._echoed:
                if getattr(event, "session_id", None) == self._session_id:
                    self._unanswered.pop(self._echoed.pop(0), None)
            if isinstance(event, AssistantMessageComplete | ErrorEvent) or handed_over:
                self._open_turns = max(0, self._open_turns - 1)
                if self._open_turns == 0:
                    self._idle.set()
            elif isinstance(event, TokenExpiring):
                await self.login()
                await ws.send(Auth(type="auth", token=self._token).model_dump_json())
            elif isinstance(event, Connection) and self._reconnecting:
                self._reconnecting = False
                self._print("[reconnected]\n")
            elif isinstance(event, Connection) and self._last_seq is None:
                self._print(f"[connected as {self._username}; type a message, Ctrl-D to quit]\n")
            self._print(self._renderer.render(event))
            if isinstance(event, ErrorEvent):
                await self._resend_after_failure(ws, event)
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
