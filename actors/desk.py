"""The counsellor's side of a hand-off: what a counsellor may ask, checked, then carried to the
person's ConnectionActor (which owns the conversation's presence, `actors.handoff`).

A counsellor's actor and the person's may live in different host actors on different nodes:
`Peers` reaches the person's host (`person`), delivers a session's events to a counsellor's
actor on its host (`deliver`, in order), and tells every host of a new escalation (`announce`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from haven.errors import NotFound
from haven.presence import Presence
from haven.protocol import EscalationQueued, ServerEventBase, SessionHistory
from haven.roles import require
from haven.storage.queue import QUEUE_WINDOW
from haven.storage.store import Store

# How each kind of counsellor read is named in the audit (`haven escalations reads`).
READ_QUEUED = "queue"  # listed: an `escalation_queued` event or `GET /counsellor/queue`
READ_JOINED = "join"  # the whole conversation, then its events live


@dataclass(frozen=True)
class PersonCall:
    """A counsellor's request to the person's ConnectionActor."""

    op: Literal["join", "say", "leave", "away", "back"]
    counsellor_id: str
    session_id: str = ""
    text: str = ""
    client_message_id: str | None = None


class Peers(Protocol):
    async def person(self, person_id: str, call: PersonCall) -> SessionHistory | None: ...

    def deliver(self, counsellor_id: str, events: list[ServerEventBase]) -> None: ...

    def announce(self, event: EscalationQueued) -> None: ...


class CounsellorDesk:
    def __init__(self, store: Store, peers: Peers) -> None:
        self._store = store
        self._peers = peers

    async def join(self, counsellor_id: str, session_id: str) -> SessionHistory:
        """`not_found` unless the session is in the queue (so its existence is not revealed);
        `already_joined` while another counsellor is in it."""
        await self._check_role(counsellor_id)
        since = datetime.now(UTC) - QUEUE_WINDOW
        entries = await self._store.queue.escalated_since(since, session_id)
        if not entries:
            raise NotFound()
        # Recorded before anything of the conversation is read.
        await self._store.queue.record_reads(counsellor_id, [session_id], READ_JOINED)
        history = await self._peers.person(
            entries[0].user_id, PersonCall("join", counsellor_id, session_id)
        )
        assert history is not None
        return history

    async def say(
        self, counsellor_id: str, session_id: str, text: str, client_message_id: str | None
    ) -> None:
        person_id = await self._joined(counsellor_id, session_id)
        call = PersonCall("say", counsellor_id, session_id, text, client_message_id)
        await self._peers.person(person_id, call)

    async def leave(self, counsellor_id: str, session_id: str) -> None:
        person_id = await self._joined(counsellor_id, session_id)
        await self._peers.person(person_id, PersonCall("leave", counsellor_id, session_id))

    async def connected(self, counsellor_id: str, connected: bool) -> None:
        """The counsellor's first socket opened (`True`) or last one closed: each person whose
        conversation they are in cancels or starts the grace period."""
        op: Literal["back", "away"] = "back" if connected else "away"
        for record in await self._store.presence.of_counsellor(counsellor_id):
            await self._peers.person(record.user_id, PersonCall(op, counsellor_id))

    async def _joined(self, counsellor_id: str, session_id: str) -> str:
        """The person whose session the counsellor is in; `not_found` if they are not in it."""
        record = await self._store.presence.get(session_id)
        if (
            record is None
            or record.counsellor_id != counsellor_id
            or record.now() is Presence.ASSISTANT_ANSWERING
        ):
            raise NotFound()
        return record.user_id

    async def _check_role(self, counsellor_id: str) -> None:
        # The token's role was checked at the socket; the stored one counts (it may be gone).
        account = await self._store.get_user(counsellor_id)
        require(account.role if account else "user", "counsellor")
