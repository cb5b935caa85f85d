"""The person's side of a counsellor hand-off: who answers each of their conversations.

Owned by the person's ConnectionActor, so every change of a session's presence (join, leave,
the counsellor's connection lost and back, the grace period running out) happens in one place,
in order with the person's own events. The state (`haven.presence`) is written to storage
before it is announced, and read back when the actor is rebuilt.

The counsellor gets the session's events through `relay` (to their own ConnectionActor,
wherever it lives), which numbers them in the counsellor's own sequence.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from actors.turn import OutputScreen
from haven.errors import NotFound, SessionNotFound, UnsafeMessage
from haven.presence import Presence, counsellor_ref, counsellor_refs
from haven.protocol import (
    AssistantMessageComplete,
    CounsellorJoined,
    CounsellorLeft,
    CounsellorMessageEvent,
    CounsellorRef,
    CounsellorText,
    HistoryMessage,
    SafetyEscalation,
    ServerEventBase,
    SessionHistory,
    UserMessageEvent,
)
from haven.safety_policy import RELATIONAL_REASONS
from haven.settings import Settings
from haven.storage.store import DuplicateMessage, Store

logger = logging.getLogger(__name__)

# What of a session the counsellor in it sees live.
FORWARDED = (
    UserMessageEvent,
    SafetyEscalation,
    AssistantMessageComplete,
    CounsellorMessageEvent,
    CounsellorJoined,
)

Emit = Callable[[ServerEventBase], None]
Relay = Callable[[str, list[ServerEventBase]], None]


@dataclass
class _Seat:
    counsellor_id: str
    counsellor: CounsellorRef
    state: Presence
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class Handoff:
    def __init__(
        self,
        user_id: str,
        *,
        settings: Settings,
        store: Store,
        output_screen: OutputScreen,
        broadcast: Emit,
        relay: Relay,
    ) -> None:
        self._user_id = user_id
        self._settings = settings
        self._store = store
        self._screen = output_screen
        self._broadcast = broadcast
        self._relay = relay
        self._seats: dict[str, _Seat] = {}
        self.display_name = ""

    async def load(self, display_name: str) -> None:
        """Takes up the presence stored for the person's sessions; a grace period that ran out
        while no actor held it hands the session back now."""
        self.display_name = display_name
        now = datetime.now(UTC)
        for record in await self._store.presence.of_user(self._user_id):
            seat = _Seat(record.counsellor_id, await self._ref(record.counsellor_id), record.state)
            self._seats[record.session_id] = seat
            state = record.now(now)
            if state is Presence.ASSISTANT_ANSWERING:
                await self._hand_back(record.session_id, seat, "timed_out")
            elif state is Presence.COUNSELLOR_LEAVING and record.grace_until is not None:
                self._start_grace(record.session_id, seat, record.grace_until)

    def answering(self, session_id: str) -> bool:
        """Whether the assistant replies in this session (no counsellor present or leaving)."""
        return session_id not in self._seats

    def joined_by(self, session_id: str) -> str | None:
        seat = self._seats.get(session_id)
        return seat.counsellor.display_name if seat else None

    def present(self) -> list[CounsellorJoined]:
        """What a newly connected socket of the person is told: who is in which session."""
        return [
            CounsellorJoined(session_id=session_id, counsellor=seat.counsellor)
            for session_id, seat in self._seats.items()
        ]

    def forward(self, event: ServerEventBase) -> None:
        """Called with every event broadcast to the person: the counsellor gets a copy."""
        session_id = getattr(event, "session_id", None)
        seat = self._seats.get(session_id) if isinstance(session_id, str) else None
        if seat is not None and isinstance(event, FORWARDED):
            self._relay(seat.counsellor_id, [event])

    # What counsellors ask (through their own ConnectionActor)

    async def join(self, session_id: str, counsellor_id: str) -> SessionHistory:
        try:
            await self._store.get_session(self._user_id, session_id)
        except SessionNotFound:
            raise NotFound() from None
        record = await self._store.presence.join(self._user_id, session_id, counsellor_id)
        seat = self._seats.get(session_id)
        if seat is not None and seat.timer is not None:
            seat.timer.cancel()
        if seat is not None and seat.counsellor_id != counsellor_id:
            # Storage let another counsellor in: the previous one's grace period had run out.
            self._announce_left(session_id, seat, "timed_out")
        seat = _Seat(counsellor_id, await self._ref(counsellor_id), record.state)
        self._seats[session_id] = seat
        history = await self._history(session_id)
        # History first, then (in the same order as the person sees them) every later event.
        self._relay(counsellor_id, [history])
        self._broadcast(CounsellorJoined(session_id=session_id, counsellor=seat.counsellor))
        return history

    async def say(
        self, session_id: str, counsellor_id: str, text: str, client_message_id: str | None
    ) -> None:
        seat = self._seat_of(session_id, counsellor_id)
        # The person is at risk by definition here: the stricter screen applies. What it says
        # about a model's tone does not apply to a person: a counsellor may say they are one.
        reason = self._screen(text, at_risk=True)
        if reason is not None and reason not in RELATIONAL_REASONS:
            raise UnsafeMessage()
        try:
            stored = await self._store.add_message(
                self._user_id,
                session_id,
                "counsellor",
                text,
                client_message_id=_scoped(counsellor_id, client_message_id),
                author_id=counsellor_id,
            )
        except DuplicateMessage as duplicate:
            existing = duplicate.existing
            again = _message_event(session_id, existing.id, existing.text, seat.counsellor)
            update = {"client_message_id": client_message_id, "duplicate": True}
            self._relay(counsellor_id, [again.model_copy(update=update)])
            return
        except SessionNotFound:
            raise NotFound() from None
        event = _message_event(session_id, stored.id, stored.text, seat.counsellor)
        self._broadcast(event.model_copy(update={"client_message_id": client_message_id}))

    async def leave(self, session_id: str, counsellor_id: str) -> None:
        seat = self._seat_of(session_id, counsellor_id)
        await self._hand_back(session_id, seat, "left")

    async def away(self, counsellor_id: str) -> None:
        """The counsellor's last socket closed: the grace period starts in each session."""
        until = datetime.now(UTC) + timedelta(seconds=self._settings.counsellor_grace_s)
        for session_id, seat in list(self._seats.items()):
            if seat.counsellor_id == counsellor_id and seat.state is Presence.COUNSELLOR_PRESENT:
                state = Presence.COUNSELLOR_LEAVING
                if await self._store.presence.set_state(session_id, counsellor_id, state, until):
                    seat.state = state
                    self._start_grace(session_id, seat, until)

    async def back(self, counsellor_id: str) -> None:
        """A socket of the counsellor is open again: they stay, nothing changes for the person."""
        for session_id, seat in list(self._seats.items()):
            if seat.counsellor_id == counsellor_id and seat.state is Presence.COUNSELLOR_LEAVING:
                if seat.timer is not None:
                    seat.timer.cancel()
                    seat.timer = None
                state = Presence.COUNSELLOR_PRESENT
                await self._store.presence.set_state(session_id, counsellor_id, state)
                seat.state = state

    def close(self) -> None:
        """The actor is going away: its timers go with it (storage keeps the deadlines)."""
        for seat in self._seats.values():
            if seat.timer is not None:
                seat.timer.cancel()

    # Internals

    def _seat_of(self, session_id: str, counsellor_id: str) -> _Seat:
        seat = self._seats.get(session_id)
        if seat is None or seat.counsellor_id != counsellor_id:
            raise NotFound()
        return seat

    def _start_grace(self, session_id: str, seat: _Seat, until: datetime) -> None:
        if seat.timer is not None:
            seat.timer.cancel()
        delay = max((until - datetime.now(UTC)).total_seconds(), 0.0)
        seat.timer = asyncio.get_running_loop().call_later(
            delay, self._grace_over, session_id, seat
        )

    def _grace_over(self, session_id: str, seat: _Seat) -> None:
        seat.timer = None
        if self._seats.get(session_id) is seat and seat.state is Presence.COUNSELLOR_LEAVING:
            task = asyncio.get_running_loop().create_task(
                self._hand_back(session_id, seat, "timed_out")
            )
            task.add_done_callback(_log_failure)

    async def _hand_back(self, session_id: str, seat: _Seat, reason: str) -> None:
        await self._store.presence.leave(session_id, seat.counsellor_id)
        if self._seats.get(session_id) is seat:
            del self._seats[session_id]
        if seat.timer is not None:
            seat.timer.cancel()
        self._announce_left(session_id, seat, reason)

    def _announce_left(self, session_id: str, seat: _Seat, reason: str) -> None:
        left = CounsellorLeft(
            session_id=session_id,
            counsellor=seat.counsellor,
            reason="timed_out" if reason == "timed_out" else "left",
        )
        self._relay(seat.counsellor_id, [left])
        self._broadcast(left)

    async def _history(self, session_id: str) -> SessionHistory:
        messages = await self._store.list_messages(self._user_id, session_id)
        names = await counsellor_refs(self._store, (m.author_id for m in messages))
        return SessionHistory(
            session_id=session_id,
            display_name=self.display_name,
            messages=[
                HistoryMessage(
                    id=m.id,
                    role=m.role,
                    text=m.text,
                    created_at=m.created_at.isoformat(timespec="milliseconds").replace(
                        "+00:00", "Z"
                    ),
                    risk_level=m.risk_level.value if m.risk_level else None,
                    counsellor=names.get(m.author_id) if m.author_id else None,
                )
                for m in messages
            ],
        )

    async def _ref(self, counsellor_id: str) -> CounsellorRef:
        return counsellor_ref(await self._store.get_user(counsellor_id))


def _message_event(
    session_id: str, message_id: str, text: str, counsellor: CounsellorRef
) -> CounsellorMessageEvent:
    return CounsellorMessageEvent(
        session_id=session_id,
        message=CounsellorText(id=message_id, text=text, counsellor=counsellor),
    )


def _scoped(counsellor_id: str, client_message_id: str | None) -> str | None:
    """The counsellor's id for a message, in the person's namespace of client ids (unique per
    person): hashed with the counsellor, so it can never collide with one of the person's."""
    if client_message_id is None:
        return None
    digest = hashlib.sha256(f"{counsellor_id}\x00{client_message_id}".encode()).hexdigest()
    return f"counsellor:{digest[:48]}"


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("handing a conversation back failed", exc_info=task.exception())
