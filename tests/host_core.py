"""A connection host in this process, over a migrated store, for the host's unit tests."""

from __future__ import annotations

import asyncio

from actors.host import ConnectionHostCore
from haven.settings import Settings
from haven.storage import migrate
from haven.storage.store import Store
from tests.fakes import FakeAssessor, FakeGenerator


def no_screen(text: str, *, at_risk: bool = False, distressed: bool = False) -> str | None:
    return None


async def host_core(settings: Settings) -> tuple[ConnectionHostCore, Store]:
    """The host and its store (the caller closes the store)."""
    await asyncio.to_thread(migrate.upgrade, settings.resolved_database_url)
    store = Store.from_url(settings.resolved_database_url)
    return ConnectionHostCore(settings, store, FakeAssessor(), FakeGenerator(), no_screen), store
