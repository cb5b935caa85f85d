"""Where ConnectionActors live: many per process, one process per pool slot.

A Ray actor per user costs a process (~90 MiB); a ConnectionActor object inside a host costs
kilobytes. `ConnectionHostCore` is that host without Ray, used in-process by the app tests;
`ConnectionHost` is the Ray actor around it (see `actors.pool`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from actors.channel import Outbound
from actors.connection import ConnectionActor, SocketTicket
from actors.desk import READ_QUEUED, CounsellorDesk, Peers, PersonCall
from actors.limits import SlidingWindow
from actors.link import Deliver, LinkSink
from actors.turn import OutputScreen
from haven.backends import ReplyGenerator, RiskAssessor
from haven.errors import HavenError
from haven.protocol import (
    ClientFrame,
    CounsellorSay,
    EscalationQueued,
    Join,
    Leave,
    ServerEventBase,
    SessionHistory,
)
from haven.settings import Settings
from haven.storage.store import Store

logger = logging.getLogger(__name__)


class Connections(Protocol):
    """What the Gateway needs from wherever the users' ConnectionActors live."""

    async def open(
        self, user_id: str, socket_id: str, ticket: SocketTicket, deliver: Deliver
    ) -> list[Outbound]:
        """Registers the socket with the user's actor. Returns the first batch: empty once the
        socket is registered (it will receive every event of the user from then on, through
        `deliver`, and None once its stream ends), or the close order of a refused socket."""
        ...

    async def receive(self, user_id: str, socket_id: str, frame: ClientFrame) -> None: ...

    async def reject(self, user_id: str, socket_id: str, error: HavenError) -> None: ...

    async def refresh(
        self, user_id: str, socket_id: str, jti: str | None, expires_at: float
    ) -> None: ...

    async def revoke(self, user_id: str, jti: str) -> int: ...

    async def erase(self, user_id: str) -> int:
        """The user's account was erased: closes all their sockets (4010)."""
        ...

    async def forget_session(self, user_id: str, session_id: str) -> None:
        """The session was deleted: drops its events from the user's replay log."""
        ...

    async def detach(self, user_id: str, socket_id: str) -> None: ...

    async def join(self, counsellor_id: str, session_id: str) -> SessionHistory:
        """A counsellor joins a conversation (REST); the same checks as the `join` frame."""
        ...

    async def leave(self, counsellor_id: str, session_id: str) -> None: ...

    async def settle(self) -> None:
        """Lets the work this process started for closed sockets (a counsellor's presence, a
        frame, a turn still running, the replay log's writes) finish, so that the store the
        Gateway closes next is not in use."""
        ...


class ConnectionHostCore:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        assessor: RiskAssessor,
        generator: ReplyGenerator,
        output_screen: OutputScreen,
        peers: Peers | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._assessor = assessor
        self._generator = generator
        self._output_screen = output_screen
        self._actors: dict[str, ConnectionActor] = {}
        # Counsellors' calls in progress on a person's actor: it stays while one runs.
        self._in_use: dict[str, int] = {}
        self._loading: dict[str, asyncio.Task[ConnectionActor]] = {}
        self._retiring: dict[str, asyncio.Task[None]] = {}
        # New-connection windows per user; kept past eviction so reconnect loops are counted.
        self._connects: dict[str, SlidingWindow] = {}
        # Without other hosts (tests, one process), everyone's actor is here.
        self._peers: Peers = peers or _SameHost(self)
        self._desk = CounsellorDesk(store, self._peers)
        # Per counsellor, the last "connected"/"gone" change: each waits for the one before.
        self._presence_changes: dict[str, asyncio.Task[None]] = {}
        # Work started for a socket that may outlive it: awaited by `settle` before shutdown.
        self._background: set[asyncio.Task[None]] = set()
        # Runs only while this host holds sockets; one query a round for all of them.
        self._account_check: asyncio.Task[None] | None = None
        self._checking_accounts = False

    @property
    def user_count(self) -> int:
        return len(self._actors)

    @property
    def socket_count(self) -> int:
        return sum(actor.socket_count for actor in self._actors.values())

    def existing(self, user_id: str) -> ConnectionActor | None:
        return self._actors.get(user_id)

    async def actor(self, user_id: str) -> ConnectionActor:
        """The user's actor, rebuilt from storage if this host has none; the one this host
        holds when the caller resumes, so what the caller does next reaches the live actor."""
        while True:
            actor = self._actors.get(user_id)
            if actor is not None:
                return actor
            loading = self._loading.get(user_id)
            if loading is None:
                loading = asyncio.get_running_loop().create_task(self._load(user_id))
                self._loading[user_id] = loading
            loaded = await asyncio.shield(loading)
            if self._actors.get(user_id) is loaded:
                return loaded
            # Another caller of the same load (a counsellor's call) was done with it and it
            # went idle before this caller resumed: a socket attached to it would be lost.

    async def _load(self, user_id: str) -> ConnectionActor:
        try:
            retiring = self._retiring.get(user_id)
            if retiring is not None:
                # The previous actor's last events must be in storage before this one reads it.
                await asyncio.shield(retiring)
            actor = ConnectionActor(
                user_id,
                settings=self._settings,
                store=self._store,
                assessor=self._assessor,
                generator=self._generator,
                output_screen=self._output_screen,
                on_idle=self._evict,
                connects=self._connects.setdefault(
                    user_id,
                    SlidingWindow(self._settings.new_connections_per_minute, 60.0),
                ),
                links=self,
            )
            await actor.load()
            self._actors[user_id] = actor
            return actor
        finally:
            self._loading.pop(user_id, None)

    def _evict(self, user_id: str) -> None:
        actor = self._actors.get(user_id)
        if actor is None or not actor.idle or self._in_use.get(user_id):
            return
        del self._actors[user_id]
        actor.handoff.close()
        window = self._connects.get(user_id)
        if window is not None and not window.active:
            del self._connects[user_id]
        task = asyncio.get_running_loop().create_task(actor.replay.drain())
        self._retiring[user_id] = task
        task.add_done_callback(lambda _: self._retiring.pop(user_id, None))

    async def open_socket(
        self,
        user_id: str,
        socket_id: str,
        ticket: SocketTicket,
        forward: Callable[[Outbound | None], None],
    ) -> list[Outbound]:
        """Registers a socket whose items go to `forward` one by one (None once it is closed):
        returns the first batch, empty once registered or the refusal's close order."""
        actor = await self.actor(user_id)
        channel = actor.attach(socket_id, ticket)
        if channel.closing:
            return await channel.next_batch() or []

        def forward_and_unwatch(item: Outbound | None) -> None:
            forward(item)
            if item is None:
                self._unwatch_accounts()

        channel.forward_to(forward_and_unwatch)
        self._watch_accounts()
        return []

    async def release(self, link: LinkSink) -> int:
        """The link ended (its replica stopped reading): detaches the sockets still on it, as a
        normal close would; returns how many."""
        link.close()
        sockets = list(link.sockets.items())
        link.sockets.clear()
        for socket_id, user_id in sockets:
            await self.detach(user_id, socket_id)
        self._unwatch_accounts()
        return len(sockets)

    async def receive(self, user_id: str, socket_id: str, frame: ClientFrame) -> None:
        (await self.actor(user_id)).receive(socket_id, frame)

    async def receive_many(self, frames: list[tuple[str, str, ClientFrame]]) -> list[bool]:
        """Frames of many sockets in one call, in order; for each, whether it was taken (a
        False is a frame whose user's actor could not be loaded: its socket should close)."""
        taken: list[bool] = []
        for user_id, socket_id, frame in frames:
            try:
                await self.receive(user_id, socket_id, frame)
            except Exception:
                logger.exception("a frame could not reach its ConnectionActor")
                taken.append(False)
            else:
                taken.append(True)
        return taken

    async def reject(self, user_id: str, socket_id: str, error: HavenError) -> None:
        (await self.actor(user_id)).reject(socket_id, error)

    async def refresh(
        self, user_id: str, socket_id: str, jti: str | None, expires_at: float
    ) -> None:
        actor = self._actors.get(user_id)
        if actor is not None:
            actor.refresh(socket_id, jti, expires_at)

    async def revoke(self, user_id: str, jti: str) -> int:
        actor = self._actors.get(user_id)
        return actor.revoke(jti) if actor is not None else 0

    async def erase(self, user_id: str) -> int:
        self._store.keys.forget(user_id)
        actor = self._actors.get(user_id)
        return actor.erase() if actor is not None else 0

    async def close_erased(self) -> int:
        """Closes, as `erase` does, the sockets of every account here that no longer exists
        (erased by an operator, who reaches the database only); returns how many."""
        connected = [user_id for user_id, actor in self._actors.items() if actor.socket_count]
        if not connected:
            return 0
        existing = await self._store.existing_user_ids(connected)
        erased = [user_id for user_id in connected if user_id not in existing]
        closed = 0
        for user_id in erased:
            closed += await self.erase(user_id)
        if erased:
            logger.info("closed %d sockets of %d erased accounts", closed, len(erased))
        return closed

    def _watch_accounts(self) -> None:
        if self._account_check is None or self._account_check.done():
            self._account_check = _spawn(self._check_accounts(), "checking for erased accounts")

    def _unwatch_accounts(self) -> None:
        # Only while it sleeps: cancelling a query could leave its connection half used.
        task = self._account_check
        if task is not None and not self.socket_count and not self._checking_accounts:
            task.cancel()
            self._account_check = None

    async def _check_accounts(self) -> None:
        """An erased account's sockets close within `account_check_s` (plus one query), with
        no timer of their own."""
        while self.socket_count:
            await asyncio.sleep(self._settings.account_check_s)
            self._checking_accounts = True
            try:
                await self.close_erased()
            except Exception:
                # Unknown is not erased: the next round asks again.
                logger.warning("could not check for erased accounts", exc_info=True)
            finally:
                self._checking_accounts = False

    async def forget_session(self, user_id: str, session_id: str) -> None:
        actor = self._actors.get(user_id)
        if actor is not None:
            actor.forget_session(session_id)

    async def detach(self, user_id: str, socket_id: str) -> None:
        actor = self._actors.get(user_id)
        if actor is not None:
            actor.detach(socket_id)

    # Counsellors: the links each ConnectionActor of this host uses (`CounsellorLinks`)

    def relay(self, counsellor_id: str, events: list[ServerEventBase]) -> None:
        self._peers.deliver(counsellor_id, events)

    def announce(self, event: EscalationQueued) -> None:
        self._peers.announce(event)

    def frame(self, user_id: str, socket_id: str, frame: ClientFrame) -> None:
        self.spawn(self._counsellor_frame(user_id, socket_id, frame), "a counsellor's frame")

    def connected(self, user_id: str, connected: bool) -> None:
        previous = self._presence_changes.get(user_id)

        async def change() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            await self._desk.connected(user_id, connected)

        task = self.spawn(change(), "a counsellor's presence")
        self._presence_changes[user_id] = task
        task.add_done_callback(
            lambda done: (
                self._presence_changes.pop(user_id, None)
                if self._presence_changes.get(user_id) is done
                else None
            )
        )

    def spawn(self, work: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        """Runs `work` in the background, logging its failure, until `settle` at shutdown."""
        task = _spawn(work, what)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _running(self) -> set[asyncio.Task[Any]]:
        tasks: set[asyncio.Task[Any]] = {
            *self._background,
            *self._retiring.values(),
            *self._loading.values(),
        }
        for actor in self._actors.values():
            tasks.update(actor.running())
        return {task for task in tasks if not task.done()}

    async def settle(self, wait_s: float = 5.0) -> None:
        """Waits (at most `wait_s`) for everything this host has writing to the store: spawned
        work, turns still running for closed sockets, replay logs being written or drained."""
        deadline = asyncio.get_running_loop().time() + wait_s
        # A task may start another (a presence change waits for the one before; a turn's end
        # flushes the replay log, and evicts an idle actor, which drains it): until none.
        while running := self._running():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                logger.info("%d background tasks still running at shutdown", len(running))
                return
            await asyncio.wait(running, timeout=left)

    async def _counsellor_frame(self, user_id: str, socket_id: str, frame: ClientFrame) -> None:
        actor = self._actors.get(user_id)
        if actor is None:
            return
        async with actor.counsellor_lock:
            try:
                if isinstance(frame, Join):
                    await self._desk.join(user_id, frame.session_id)
                elif isinstance(frame, CounsellorSay):
                    await self._desk.say(
                        user_id, frame.session_id, frame.message_text, frame.client_message_id
                    )
                elif isinstance(frame, Leave):
                    await self._desk.leave(user_id, frame.session_id)
            except HavenError as error:
                actor.reject(socket_id, error)
            except Exception:
                logger.exception("a counsellor's %s failed", frame.type)
                actor.reject(socket_id, HavenError())

    async def join(self, counsellor_id: str, session_id: str) -> SessionHistory:
        return await self._desk.join(counsellor_id, session_id)

    async def leave(self, counsellor_id: str, session_id: str) -> None:
        await self._desk.leave(counsellor_id, session_id)

    # Counsellors: what other hosts (or this one, as `Peers`) ask of this host

    async def person(self, person_id: str, call: PersonCall) -> SessionHistory | None:
        """Carries out a counsellor's request on the person's ConnectionActor (loaded from
        storage if it is not here)."""
        actor = await self.actor(person_id)
        handoff = actor.handoff
        self._in_use[person_id] = self._in_use.get(person_id, 0) + 1
        try:
            if call.op == "join":
                return await handoff.join(call.session_id, call.counsellor_id)
            if call.op == "say":
                await handoff.say(
                    call.session_id, call.counsellor_id, call.text, call.client_message_id
                )
            elif call.op == "leave":
                await handoff.leave(call.session_id, call.counsellor_id)
            elif call.op == "away":
                await handoff.away(call.counsellor_id)
            else:
                await handoff.back(call.counsellor_id)
            return None
        finally:
            if (left := self._in_use.pop(person_id) - 1) > 0:
                self._in_use[person_id] = left
            # Loaded only for this: what it wrote is in storage and its replay log.
            self._evict(person_id)

    def deliver(self, counsellor_id: str, events: list[ServerEventBase]) -> bool:
        """A session's events for a counsellor whose actor is here; whether a socket of theirs
        is open to take them. One with none gets them from `session_history` on joining anew."""
        actor = self._actors.get(counsellor_id)
        if actor is None:
            return False
        for event in events:
            actor.deliver(event)
        return actor.socket_count > 0

    def counsellor_unreachable(self, counsellor_id: str) -> None:
        """Events for the counsellor found no open socket of theirs: as when their last socket
        closes, the grace period starts wherever they are present (a reconnect ends it)."""
        self.connected(counsellor_id, False)

    async def announce_here(self, event: EscalationQueued) -> None:
        """To every counsellor connected to this host, each one recorded in the audit of
        counsellors' reads before it is shown."""
        shown = [actor for actor in self._actors.values() if actor.is_counsellor]
        for actor in shown:
            await self._store.queue.record_reads(actor.user_id, [event.session_id], READ_QUEUED)
        for actor in shown:
            if actor.is_counsellor:
                actor.deliver(event)


def _spawn(work: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(work)
    task.add_done_callback(lambda done: _log_failure(done, what))
    return task


def _log_failure(task: asyncio.Task[None], what: str) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s failed", what, exc_info=task.exception())


class _SameHost:
    """`Peers` when every actor lives in this host."""

    def __init__(self, core: ConnectionHostCore) -> None:
        self._core = core

    async def person(self, person_id: str, call: PersonCall) -> SessionHistory | None:
        return await self._core.person(person_id, call)

    def deliver(self, counsellor_id: str, events: list[ServerEventBase]) -> None:
        if not self._core.deliver(counsellor_id, events):
            self._core.counsellor_unreachable(counsellor_id)

    def announce(self, event: EscalationQueued) -> None:
        self._core.spawn(self._core.announce_here(event), "telling counsellors of an escalation")


class LocalConnections(ConnectionHostCore):
    """`Connections` served in this process (tests, and a single-process run)."""

    async def open(
        self, user_id: str, socket_id: str, ticket: SocketTicket, deliver: Deliver
    ) -> list[Outbound]:
        def forward(item: Outbound | None) -> None:
            deliver(None if item is None else [item])

        return await self.open_socket(user_id, socket_id, ticket, forward)
