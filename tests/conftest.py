"""Fixtures for every tier: the database a test that touches storage runs against.

`database_url` is parametrized over SQLite and PostgreSQL, so such a test runs once on each. The
PostgreSQL server is started once per test session (tests/postgres.py) and each test gets an
empty database of its own. Without PostgreSQL binaries the `postgresql` runs are skipped with the
reason, except where CI or HAVEN_REQUIRE_POSTGRES is set: there they fail.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from haven.storage.database import safe_url
from tests import postgres as pg

# Every test process (and what it starts: servers, Ray workers) seals stored text under this
# master key unless a test sets another; outside development one is required.
TEST_MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
os.environ.setdefault("HAVEN_MASTER_KEY", TEST_MASTER_KEY)

DATABASE_BACKENDS = ("sqlite", "postgresql")
# For a test that uses the app but never reaches storage, where a second run would only cost time.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def postgres_required() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")
        for name in ("CI", "HAVEN_REQUIRE_POSTGRES")
    )


def pytest_report_header() -> str:
    if external := os.environ.get("HAVEN_TEST_POSTGRES_URL"):
        return f"postgresql: {safe_url(external)} (HAVEN_TEST_POSTGRES_URL)"
    bindir = pg.find_bindir()
    if bindir is not None:
        return f"postgresql: throwaway server from {bindir}"
    missing = "failed (required here)" if postgres_required() else "skipped"
    return f"postgresql: no binaries found; the postgresql runs are {missing}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pg.Postgres]:
    try:
        server = pg.start()
    except pg.PostgresUnavailable as missing:
        if postgres_required():
            pytest.fail(f"PostgreSQL is required here (CI / HAVEN_REQUIRE_POSTGRES): {missing}")
        pytest.skip(str(missing))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=DATABASE_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (not migrated): a SQLite file whose folder does not exist yet, or a
    database of its own on the test PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'db' / 'haven.db'}"
        return
    server: pg.Postgres = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)
