"""Who answers a conversation: the assistant, or a counsellor who joined it.

One state per session, owned by the person's ConnectionActor and persisted (table
`counsellor_presence`; no row is `ASSISTANT_ANSWERING`), so a rebuilt actor picks it up:

    ASSISTANT_ANSWERING --join--> COUNSELLOR_PRESENT --leave--> ASSISTANT_ANSWERING
    COUNSELLOR_PRESENT --the counsellor's last socket closed--> COUNSELLOR_LEAVING
    COUNSELLOR_LEAVING --a socket of theirs is back--> COUNSELLOR_PRESENT
    COUNSELLOR_LEAVING --grace period over--> ASSISTANT_ANSWERING

While a counsellor is present or leaving, the assistant does not reply.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from haven.protocol import CounsellorRef

if TYPE_CHECKING:
    from collections.abc import Iterable

    from haven.storage.records import UserRecord
    from haven.storage.store import Store


class Presence(StrEnum):
    ASSISTANT_ANSWERING = "assistant_answering"
    COUNSELLOR_PRESENT = "counsellor_present"
    COUNSELLOR_LEAVING = "counsellor_leaving"


def current(state: Presence, grace_until: datetime | None, now: datetime) -> Presence:
    """`state` as of `now`: a grace period that ran out hands the conversation back, even if
    nobody was there to see it happen (the actor that held the timer may be gone)."""
    if state is Presence.COUNSELLOR_LEAVING and grace_until is not None and grace_until <= now:
        return Presence.ASSISTANT_ANSWERING
    return state


def counsellor_ref(account: UserRecord | None) -> CounsellorRef:
    """A counsellor as the person sees them: display name, else username. An erased
    counsellor's account is gone; what they wrote stays the person's, under a plain title."""
    name = (account.display_name or account.username) if account else "Counsellor"
    return CounsellorRef(display_name=name)


async def counsellor_refs(
    store: Store, author_ids: Iterable[str | None]
) -> dict[str, CounsellorRef]:
    """Each distinct counsellor among a conversation's message authors, as the person sees
    them (one account read per counsellor, not per message)."""
    return {
        author: counsellor_ref(await store.get_user(author))
        for author in {a for a in author_ids if a}
    }
