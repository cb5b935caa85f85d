"""The back-off of login throttling grows, is capped, and forgets old failures."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from haven.errors import TooManyLoginAttempts
from haven.settings import Settings
from haven.storage import migrate
from haven.storage.store import Store
from haven.throttle import AuthThrottle, backoff

START = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def test_backoff_doubles_from_the_threshold_up_to_the_cap() -> None:
    lock_for = backoff(START, threshold=5, base_s=30, longest_s=200)
    waits = [lock_for(count, START) for count in range(1, 10)]
    seconds = [None if w is None else (w - START).total_seconds() for w in waits]
    assert seconds == [None, None, None, None, 30, 60, 120, 200, 200]


def _retry_after(throttle: AuthThrottle) -> float | None:
    try:
        asyncio.run(throttle.check_login("ana", "10.0.0.1"))
    except TooManyLoginAttempts as error:
        return error.retry_after
    return None


def test_each_failure_after_a_lock_lengthens_the_next_one(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'haven.db'}"
    migrate.upgrade(url)
    settings = Settings(
        data_dir=tmp_path, database_url=url, login_failures_per_account=2, login_lockout_base_s=10
    )
    clock = Clock()
    store = Store.from_url(url)
    throttle = AuthThrottle(store.throttle, settings, clock=clock)
    waits = []
    for _ in range(3):
        asyncio.run(throttle.login_failed("ana", "10.0.0.1"))
        waits.append(_retry_after(throttle))
        clock.now += timedelta(seconds=waits[-1] or 0)  # wait out the lock
    assert waits == [None, 10, 20]
    # Failures older than the window are forgotten: the next one starts over.
    clock.now += timedelta(seconds=settings.login_failure_window_s + 1)
    asyncio.run(throttle.login_failed("ANA", "10.0.0.2"))
    assert _retry_after(throttle) is None
    asyncio.run(store.close())


@pytest.mark.parametrize("username", ["ana", "ANA", "Ana"])
def test_the_account_is_counted_whatever_the_case_of_the_name(
    tmp_path: Path, username: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'haven.db'}"
    migrate.upgrade(url)
    settings = Settings(data_dir=tmp_path, database_url=url, login_failures_per_account=1)
    store = Store.from_url(url)
    throttle = AuthThrottle(store.throttle, settings, clock=Clock())
    asyncio.run(throttle.login_failed(username, "10.0.0.9"))
    assert _retry_after(throttle) == settings.login_lockout_base_s
    asyncio.run(store.close())
