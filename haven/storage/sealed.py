"""What each sealed column is bound to: the identity of its row.

A sealed value opens only in the row it was written for, so one copied into another row (even
another row of the same user) is refused. The parts named here never change after insert.
"""

from __future__ import annotations

from haven.storage.crypto import row_identity


def message_identity(message_id: str, user_id: str, session_id: str, role: str) -> bytes:
    return row_identity("messages.text", message_id, user_id, session_id, role)


def event_identity(user_id: str, seq: int, session_id: str | None) -> bytes:
    return row_identity("user_events.payload", user_id, seq, session_id)
