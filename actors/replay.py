"""A user's numbered events: sequence numbers, the retained window `resume` replays, and
write-behind persistence so a rebuilt ConnectionActor can still replay.

Streamed chunks are numbered but not logged: once a reply completes, its complete message is
what a returning client gets. Chunks of the reply still being written are kept in memory, so a
client that drops mid-reply misses nothing of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from haven.protocol import AssistantMessageChunk, AssistantMessageComplete, ServerEventBase
from haven.storage.events import EventLog, LoggedEvent

logger = logging.getLogger(__name__)

SEQ_BLOCK = 100_000


@dataclass(frozen=True)
class Replay:
    frames: list[str]
    recovered: bool


class ReplayLog:
    def __init__(self, user_id: str, events: EventLog, *, window_s: float, max_events: int) -> None:
        self._user_id = user_id
        self._events = events
        self._window = timedelta(seconds=window_s)
        self._max_events = max_events
        self._next = 1
        self._reserved_end = 1
        self._floor = 0
        self._log: deque[LoggedEvent] = deque()
        self._chunks: list[tuple[int, str]] = []  # the reply being written: (seq, frame)
        self._pending: list[LoggedEvent] = []
        self._flusher: asyncio.Task[None] | None = None
        self._reserving: asyncio.Task[None] | None = None
        self._last_prune = 0.0

    async def load(self) -> None:
        """Continues the user's numbering and reloads the retained window from storage."""
        start, self._reserved_end = await self._events.reserve(self._user_id, SEQ_BLOCK)
        # Numbering starts at 1, so `last_seq=0` means "everything".
        self._next = max(start, 1)
        self._floor = await self._events.floor(self._user_id)
        found = await self._events.recent(
            self._user_id, newer_than=self._cutoff(), limit=self._max_events + 1
        )
        # An entry refused by its integrity check is missing: resuming from before it is not
        # a complete replay.
        self._floor = max(self._floor, found.refused_up_to)
        recent = [e for e in found.events if e.seq > self._floor]
        if len(recent) > self._max_events:
            self._floor = max(self._floor, recent[0].seq)
            recent = recent[1:]
        self._log.extend(recent)

    @property
    def last_seq(self) -> int:
        return self._next - 1

    def number(self, event: ServerEventBase, *, log: bool, session_id: str | None) -> str:
        """Gives `event` the next sequence number; returns its frame."""
        seq = self._take_seq()
        frame = event.model_copy(update={"seq": seq}).to_json()
        if isinstance(event, AssistantMessageChunk):
            self._chunks.append((seq, frame))
        elif log:
            if isinstance(event, AssistantMessageComplete):
                self._chunks.clear()
            entry = LoggedEvent(seq, datetime.now(UTC), session_id, frame)
            self._log.append(entry)
            self._pending.append(entry)
            self._trim()
            self._schedule_flush()
        return frame

    def discard(self) -> None:
        """Forgets every event, written or not: the user was erased."""
        self._pending.clear()
        self._log.clear()
        self._chunks.clear()

    def drop_session(self, session_id: str) -> None:
        """The session was deleted (its stored events went with it): its events are neither
        replayed from memory nor written later."""
        self._pending = [e for e in self._pending if e.session_id != session_id]
        kept = [e for e in self._log if e.session_id != session_id]
        self._log.clear()
        self._log.extend(kept)

    def reply_ended(self) -> None:
        """The reply in flight ended without completing (failed): its chunks are not replayed."""
        self._chunks.clear()

    def since(self, last_seq: int) -> Replay:
        self._trim()
        frames = [(e.seq, e.payload) for e in self._log if e.seq > last_seq]
        frames += [(seq, frame) for seq, frame in self._chunks if seq > last_seq]
        frames.sort(key=lambda item: item[0])
        return Replay([frame for _, frame in frames], recovered=last_seq >= self._floor)

    def _take_seq(self) -> int:
        seq = self._next
        self._next += 1
        if self._reserved_end - self._next < SEQ_BLOCK // 2 and self._reserving is None:
            self._reserving = asyncio.get_running_loop().create_task(self._reserve_more())
        return seq

    async def _reserve_more(self) -> None:
        try:
            _, end = await self._events.reserve(self._user_id, SEQ_BLOCK)
            self._reserved_end = end
            # Numbers between blocks are skipped: the sequence only has to increase.
            if self._next < end - SEQ_BLOCK:
                self._next = end - SEQ_BLOCK
        except Exception:
            logger.exception("could not reserve event numbers for user %s", self._user_id)
        finally:
            self._reserving = None

    def _cutoff(self) -> datetime:
        return datetime.now(UTC) - self._window

    def _trim(self) -> None:
        cutoff = self._cutoff()
        while self._log and (
            len(self._log) > self._max_events or self._log[0].created_at <= cutoff
        ):
            self._floor = max(self._floor, self._log.popleft().seq)

    def _schedule_flush(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._events.append(self._user_id, batch)
                except Exception:
                    # Kept, in order, for the next flush (the next event, or `drain`); beyond
                    # what a resume could replay, the oldest are not worth keeping.
                    self._pending = (batch + self._pending)[-self._max_events :]
                    raise
                if time.monotonic() - self._last_prune > self._window.total_seconds() / 4:
                    self._last_prune = time.monotonic()
                    await self._prune()
                # Events numbered during either write found this task running and did not
                # schedule another: the loop writes them too.
        except Exception:
            # A lost log entry costs a client a `recovered: false` and a reload, not data: the
            # messages themselves are stored by the turn.
            logger.exception("could not persist events for user %s", self._user_id)
        finally:
            self._flusher = None

    async def _prune(self) -> None:
        try:
            await self._events.prune(self._user_id, older_than=self._cutoff())
        except Exception:
            # Only delays the cleanup to the next flush.
            logger.warning("could not prune the event log of user %s", self._user_id)

    def writes(self) -> list[asyncio.Task[None]]:
        """The store writes running now (a flush, a reservation of numbers)."""
        return [t for t in (self._flusher, self._reserving) if t is not None]

    async def drain(self, attempts: int = 3) -> None:
        """Waits until every logged event is written (tests, shutdown), retrying a failed
        write up to `attempts` times."""
        while self._flusher is not None or self._pending:
            if self._flusher is None:
                if attempts == 0:
                    logger.error("gave up persisting events for user %s", self._user_id)
                    return
                attempts -= 1
                self._schedule_flush()
            assert self._flusher is not None
            await asyncio.shield(self._flusher)
