"""Persistence: users, chat sessions and messages (SQLite by default, PostgreSQL by URL)."""

from haven.storage.database import create_engine
from haven.storage.records import MessageRecord, MessageRole, SessionRecord, UserRecord
from haven.storage.store import Store

__all__ = [
    "MessageRecord",
    "MessageRole",
    "SessionRecord",
    "Store",
    "UserRecord",
    "create_engine",
]
