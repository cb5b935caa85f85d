"""ConnectionActor: one per user, owner of that user's live sockets, limits and turns.

Every event of a turn is fanned out to all of the user's sockets (multi-device) and numbered
(`seq`) so a reconnecting client can `resume`; replies to a single frame (an error in it, a
pong) go only to the socket that sent it. Turns run one at a time, in arrival order, in a
worker task that does not depend on any socket: a reply whose sockets have all gone is still
completed and stored, and replayed when the person is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from actors.channel import Close, SocketChannel
from actors.handoff import Handoff
from actors.limits import SlidingWindow, TokenBucket
from actors.replay import ReplayLog
from actors.turn import OutputScreen, Turn, TurnContext
from haven import metrics
from haven.backends import ReplyGenerator, RiskAssessor
from haven.crisis_resources import resources_for
from haven.errors import (
    AccountDeleted,
    Busy,
    CloseCode,
    ConnectingTooOften,
    Forbidden,
    HavenError,
    InvalidMessage,
    LoggedOut,
    RateLimited,
    TokenExpired,
    TooManyConnections,
)
from haven.protocol import (
    COUNSELLOR_FRAMES,
    Authenticated,
    Cancel,
    ClientFrame,
    EmergencyResources,
    ErrorEvent,
    EscalationQueued,
    Ping,
    Pong,
    Resume,
    Resumed,
    ServerEventBase,
    SessionMessage,
    TokenExpiring,
    utc_timestamp,
)
from haven.roles import DEFAULT_ROLE, Role
from haven.settings import Settings
from haven.storage.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SocketTicket:
    """What the Gateway learned about a socket when it authenticated it."""

    jti: str | None = None
    expires_at: float | None = None  # epoch seconds
    last_seq: int | None = None  # resume from here at connect
    role: Role = DEFAULT_ROLE  # the token's: which frames the socket may send


class CounsellorLinks(Protocol):
    """How a ConnectionActor reaches counsellors and the people they talk to (its host's)."""

    def relay(self, counsellor_id: str, events: list[ServerEventBase]) -> None:
        """A session's events, to the counsellor in it, in order."""

    def announce(self, event: EscalationQueued) -> None:
        """A new escalation, to every connected counsellor."""

    def frame(self, user_id: str, socket_id: str, frame: ClientFrame) -> None:
        """A counsellor's frame (`join`, `counsellor_message`, `leave`) to carry out."""

    def connected(self, user_id: str, connected: bool) -> None:
        """A counsellor's first socket opened, or their last one closed."""


class NoCounsellors:
    """Links for an actor on its own (unit tests): nothing goes anywhere."""

    def relay(self, counsellor_id: str, events: list[ServerEventBase]) -> None: ...

    def announce(self, event: EscalationQueued) -> None: ...

    def frame(self, user_id: str, socket_id: str, frame: ClientFrame) -> None: ...

    def connected(self, user_id: str, connected: bool) -> None: ...


@dataclass
class _Socket:
    channel: SocketChannel
    jti: str | None
    expires_at: float | None
    role: Role = DEFAULT_ROLE
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    refused: deque[float] = field(default_factory=deque)


@dataclass(frozen=True)
class _QueuedTurn:
    socket_id: str
    message: SessionMessage
    accepted_at: float = field(default_factory=time.monotonic)


class ConnectionActor:
    def __init__(
        self,
        user_id: str,
        *,
        settings: Settings,
        store: Store,
        assessor: RiskAssessor,
        generator: ReplyGenerator,
        output_screen: OutputScreen,
        on_idle: Callable[[str], None],
        connects: SlidingWindow | None = None,
        links: CounsellorLinks | None = None,
    ) -> None:
        self.user_id = user_id
        self._settings = settings
        self._store = store
        self._assessor = assessor
        self._generator = generator
        self._output_screen = output_screen
        self._on_idle = on_idle
        self._sockets: dict[str, _Socket] = {}
        self._pending: asyncio.Queue[_QueuedTurn] = asyncio.Queue(maxsize=settings.max_queued_turns)
        self._worker: asyncio.Task[None] | None = None
        self._turn: Turn | None = None
        self._bucket = TokenBucket(settings.message_burst, settings.message_rate_per_s)
        # Owned by the host when given, so it outlives this actor between a user's visits.
        self.connects = connects or SlidingWindow(settings.new_connections_per_minute, 60.0)
        self.replay = ReplayLog(
            user_id,
            store.events,
            window_s=settings.replay_window_s,
            max_events=settings.replay_max_events,
        )
        self._resources: EmergencyResources = resources_for(None, settings)
        self._links: CounsellorLinks = links or NoCounsellors()
        self.handoff = Handoff(
            user_id,
            settings=settings,
            store=store,
            output_screen=output_screen,
            broadcast=self.broadcast,
            relay=self._links.relay,
        )
        # A counsellor's frames are carried out one at a time, in the order they came.
        self.counsellor_lock = asyncio.Lock()

    async def load(self) -> None:
        """Continues from what storage knows: event numbering, the replay window, the locale."""
        await self.replay.load()
        user = await self._store.get_user(self.user_id)
        self._resources = resources_for(user.locale if user else None, self._settings)
        await self.handoff.load((user.display_name or user.username) if user else "")

    def running(self) -> list[asyncio.Task[None]]:
        """What this actor has running: the turn worker and the replay log's writes."""
        return [*([self._worker] if self._worker is not None else []), *self.replay.writes()]

    @property
    def idle(self) -> bool:
        return not self._sockets and self._worker is None

    @property
    def socket_count(self) -> int:
        return len(self._sockets)

    @property
    def is_counsellor(self) -> bool:
        """Whether a counsellor's socket is open here (it then gets `escalation_queued`)."""
        return any(socket.role == "counsellor" for socket in self._sockets.values())

    # Sockets

    def attach(self, socket_id: str, ticket: SocketTicket) -> SocketChannel:
        """Registers a socket. A refused one gets a channel holding only its close order."""
        channel = SocketChannel()
        refusal: HavenError | None = None
        if len(self._sockets) >= self._settings.max_connections_per_user:
            refusal = TooManyConnections()
            metrics.rate_limited("connections_per_user")
        elif (wait := self.connects.hit()) > 0:
            refusal = ConnectingTooOften(retry_after=wait)
            metrics.rate_limited("connections_per_minute")
        if refusal is not None:
            channel.put(Close(_close_code(refusal), ErrorEvent.from_error(refusal).to_json()))
            channel.close()
            return channel
        counsellor_was_here = self.is_counsellor
        socket = _Socket(channel, ticket.jti, ticket.expires_at, ticket.role)
        self._sockets[socket_id] = socket
        self._schedule_expiry(socket_id, socket)
        if ticket.last_seq is not None:
            self._resume(socket_id, ticket.last_seq)
        for joined in self.handoff.present():
            self.send_to(socket_id, joined)
        if self.is_counsellor and not counsellor_was_here:
            self._links.connected(self.user_id, True)
        return channel

    def detach(self, socket_id: str) -> None:
        socket = self._sockets.pop(socket_id, None)
        if socket is not None:
            for timer in socket.timers:
                timer.cancel()
            socket.channel.close()
            if socket.role == "counsellor" and not self.is_counsellor:
                self._links.connected(self.user_id, False)
        if self.idle:
            self._on_idle(self.user_id)

    def refresh(self, socket_id: str, jti: str | None, expires_at: float) -> None:
        """A fresh token arrived on an open socket: it now lives until the new expiry."""
        socket = self._sockets.get(socket_id)
        if socket is None:
            return
        socket.jti, socket.expires_at = jti, expires_at
        self._schedule_expiry(socket_id, socket)
        self.send_to(socket_id, Authenticated(expires_at=_iso(expires_at)))

    def revoke(self, jti: str) -> int:
        """Closes every socket opened with the token `jti` (logout); returns how many."""
        closed = 0
        for socket_id, socket in list(self._sockets.items()):
            if socket.jti == jti:
                self.close_socket(socket_id, LoggedOut())
                closed += 1
        return closed

    def erase(self) -> int:
        """The account was erased: the messages waiting for a turn are dropped, nothing more
        of this user is logged for replay, and every socket closes with `account_deleted`
        (4010). Returns how many sockets were closed."""
        while not self._pending.empty():
            self._pending.get_nowait()
        self.replay.discard()
        sockets = list(self._sockets)
        for socket_id in sockets:
            self.close_socket(socket_id, AccountDeleted())
        return len(sockets)

    def forget_session(self, session_id: str) -> None:
        """The session was deleted: its events are no longer replayed, nor written."""
        self.replay.drop_session(session_id)

    def close_socket(self, socket_id: str, error: HavenError) -> None:
        socket = self._sockets.get(socket_id)
        if socket is not None:
            frame = self.replay.number(ErrorEvent.from_error(error), log=False, session_id=None)
            socket.channel.put(Close(_close_code(error), frame))

    # Frames

    def receive(self, socket_id: str, frame: ClientFrame) -> None:
        if isinstance(frame, Ping):
            self.send_to(socket_id, Pong())
        elif isinstance(frame, Resume):
            self._resume(socket_id, frame.last_seq)
        elif isinstance(frame, Cancel):
            if self._turn is None or not self._turn.cancel(frame.message_id):
                self.reject(socket_id, InvalidMessage("nothing_to_cancel", "No reply to cancel."))
        elif isinstance(frame, SessionMessage):
            self._accept_message(socket_id, frame)
        elif isinstance(frame, COUNSELLOR_FRAMES):
            socket = self._sockets.get(socket_id)
            if socket is None or socket.role != "counsellor":
                self.reject(socket_id, Forbidden())
            else:
                self._links.frame(self.user_id, socket_id, frame)
        else:
            # `auth` is the Gateway's to verify; it arrives here as `refresh`.
            self.reject(socket_id, InvalidMessage("unknown_type", "Unexpected message type."))

    def reject(self, socket_id: str, error: HavenError) -> None:
        self.send_to(socket_id, ErrorEvent.from_error(error))

    def _accept_message(self, socket_id: str, message: SessionMessage) -> None:
        wait = self._bucket.take()
        if wait > 0:
            self._refuse_for_rate(socket_id, wait)
            return
        try:
            self._pending.put_nowait(_QueuedTurn(socket_id, message))
        except asyncio.QueueFull:
            metrics.rate_limited("queued_turns")
            self.reject(socket_id, Busy())
            return
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run_turns())

    def _refuse_for_rate(self, socket_id: str, wait: float) -> None:
        socket = self._sockets.get(socket_id)
        if socket is None:
            return
        metrics.rate_limited("messages")
        now = time.monotonic()
        period = self._settings.message_burst / self._settings.message_rate_per_s
        while socket.refused and now - socket.refused[0] > period:
            socket.refused.popleft()
        socket.refused.append(now)
        if len(socket.refused) >= self._settings.rate_limit_close_after:
            self.close_socket(socket_id, RateLimited(retry_after=wait))
        else:
            self.reject(socket_id, RateLimited(retry_after=wait))

    # Events

    def broadcast(self, event: ServerEventBase) -> None:
        self.deliver(event)
        self.handoff.forward(event)

    def deliver(self, event: ServerEventBase) -> None:
        """To every socket of the user, numbered and kept for `resume`."""
        frame = self.replay.number(event, log=True, session_id=getattr(event, "session_id", None))
        for socket in self._sockets.values():
            socket.channel.put(frame)

    def send_to(self, socket_id: str, event: ServerEventBase) -> None:
        socket = self._sockets.get(socket_id)
        if socket is not None:
            socket.channel.put(self.replay.number(event, log=False, session_id=None))

    def _resume(self, socket_id: str, last_seq: int) -> None:
        socket = self._sockets.get(socket_id)
        if socket is None:
            return
        replay = self.replay.since(last_seq)
        metrics.resumed(replay.recovered)
        for frame in replay.frames:
            socket.channel.put(frame)
        self.send_to(
            socket_id,
            Resumed(
                replayed=len(replay.frames),
                recovered=replay.recovered,
                last_seq=self.replay.last_seq,
            ),
        )

    def _schedule_expiry(self, socket_id: str, socket: _Socket) -> None:
        for timer in socket.timers:
            timer.cancel()
        socket.timers = []
        if socket.expires_at is None:
            return
        loop = asyncio.get_running_loop()
        left = socket.expires_at - time.time()
        warn_in = left - self._settings.token_expiring_lead_s
        grace = self._settings.token_grace_s
        expiring = TokenExpiring(expires_at=_iso(socket.expires_at), grace_s=grace)
        socket.timers = [
            loop.call_later(max(warn_in, 0.0), self.send_to, socket_id, expiring),
            loop.call_later(max(left + grace, 0.0), self.close_socket, socket_id, TokenExpired()),
        ]

    # Turns

    async def _run_turns(self) -> None:
        try:
            while not self._pending.empty():
                queued = self._pending.get_nowait()
                self._turn = turn = Turn(
                    self._context(queued.socket_id),
                    queued.message,
                    accepted_at=queued.accepted_at,
                    connection_id=queued.socket_id,
                )
                try:
                    await turn.run()
                except Exception:
                    # A defect in the pipeline must not end this user's worker or leak details.
                    logger.exception("turn failed for user %s", self.user_id, extra=turn.log_fields)
                    self.replay.reply_ended()
                    self.broadcast(ErrorEvent.from_error(HavenError()))
                finally:
                    self._turn = None
        finally:
            self._worker = None
            if self.idle:
                self._on_idle(self.user_id)

    def _context(self, socket_id: str) -> TurnContext:
        return TurnContext(
            user_id=self.user_id,
            settings=self._settings,
            store=self._store,
            assessor=self._assessor,
            generator=self._generator,
            output_screen=self._output_screen,
            resources=self._resources,
            broadcast=self.broadcast,
            reply=lambda event: self.send_to(socket_id, event),
            reply_ended=self.replay.reply_ended,
            counsellor_present=lambda session_id: not self.handoff.answering(session_id),
            escalated=self._escalated,
        )

    def _escalated(self, session_id: str, risk_level: str) -> None:
        """An escalation is recorded in the audit (so the session is in the queue): every
        connected counsellor hears of it."""
        self._links.announce(
            EscalationQueued(
                session_id=session_id,
                risk_level=risk_level,
                last_escalation_at=utc_timestamp(),
                display_name=self.handoff.display_name,
                joined_by=self.handoff.joined_by(session_id),
            )
        )


def _close_code(error: HavenError) -> int:
    return error.close_code or CloseCode.INTERNAL_ERROR


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
