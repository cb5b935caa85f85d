"""The async engine: SQLite by default (one file under the data dir), PostgreSQL by URL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

# Several processes (the Gateway, every ConnectionHost) write one SQLite file; on busy cores a
# writer can wait seconds for its turn, and failing a person's turn is worse than waiting.
BUSY_TIMEOUT_MS = 30_000

# Execution option that picks SQLite's BEGIN mode for one connection ("DEFERRED", "IMMEDIATE").
SQLITE_BEGIN_OPTION = "haven_sqlite_begin"

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
}


@contextlib.asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that may read before it writes.

    SQLite's default (deferred) BEGIN takes a read snapshot first and fails at once with
    "database is locked" if another writer commits before this one writes; IMMEDIATE takes
    the write lock up front and waits its turn (busy timeout) instead. PostgreSQL ignores it.
    """
    async with engine.connect() as conn:
        await conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        async with conn.begin():
            yield conn


def async_url(url: str | URL) -> URL:
    """`url` with its async driver: operators often write `postgres://` or `sqlite:///`."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def sqlite_path(url: str | URL) -> Path | None:
    """The file behind a SQLite URL; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def ensure_sqlite_dir(url: str | URL) -> None:
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def safe_url(url: str | URL) -> str:
    """The URL as it may appear in logs: the password masked."""
    return make_url(url).render_as_string(hide_password=True)


def create_engine(url: str) -> AsyncEngine:
    parsed = async_url(url)
    ensure_sqlite_dir(parsed)
    # A failed statement's error would otherwise quote its parameters (message text, event
    # frames) into every log line and traceback that mentions it.
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(parsed, hide_parameters=True)
        _install_sqlite_listeners(engine)
        return engine
    # A server may drop idle connections (restarts, proxies); check one before handing it out.
    return create_async_engine(parsed, pool_pre_ping=True, hide_parameters=True)


def _install_sqlite_listeners(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own transaction handling would leave SELECTs outside any transaction
        # (no consistent snapshot across a method's reads) and make DDL non-transactional;
        # BEGIN is emitted by `_on_begin` instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # WAL: readers never block the writer, and one writer at a time waits its turn for
            # up to the busy timeout instead of failing with "database is locked".
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            # Off by default in SQLite, per connection; ON DELETE CASCADE depends on it.
            cursor.execute("PRAGMA foreign_keys=ON")
            # A stored message must survive a power cut, not only a process crash.
            cursor.execute("PRAGMA synchronous=FULL")
            # Deleted rows (an erased account, a rewritten one) are overwritten with zeros
            # rather than left readable in free pages of the file.
            cursor.execute("PRAGMA secure_delete=ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"unknown SQLite BEGIN mode {mode!r}")
        connection.exec_driver_sql(f"BEGIN {mode}")
