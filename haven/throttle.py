"""Login and registration throttling: how many attempts, and how long to wait after them.

As the mature auth libraries do it (django-axes, Devise's lockable, ASP.NET Identity):

- Failed logins are counted per account and per client address. From the
  `login_failures_per_account`-th failure for one username (or the `login_failures_per_address`-th
  from one address) logins wait `login_lockout_base_s`, doubling with each further failure up to
  `login_lockout_max_s`. While a lock holds every login is refused with 429 and `Retry-After`,
  the right password included, without checking it.
- An unknown username is counted exactly like a known one, so throttling tells nothing about
  which accounts exist.
- A successful login clears its account's count. The address's count is left to expire: clearing
  it would let an attacker reset it by logging in to an account of their own between guesses.
- Registrations are counted per address in a fixed hour.

The counters live in the database (`haven.storage.throttle`), shared by every Gateway replica.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from haven.errors import TooManyLoginAttempts, TooManyRegistrations
from haven.settings import Settings
from haven.storage.store import normalize_username
from haven.storage.throttle import LockFor, ThrottleCounters, throttle_key

REGISTRATION_WINDOW = timedelta(hours=1)


def backoff(now: datetime, threshold: int, base_s: float, longest_s: float) -> LockFor:
    """Locks from the `threshold`-th hit on: `base_s`, doubled per further hit, at most
    `longest_s`."""

    def lock_for(count: int, _first_at: datetime) -> datetime | None:
        if count < threshold:
            return None
        exponent = min(count - threshold, 30)  # 2**30 times the base is past any cap
        return now + timedelta(seconds=min(base_s * 2**exponent, longest_s))

    return lock_for


class AuthThrottle:
    def __init__(
        self,
        counters: ThrottleCounters,
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._counters = counters
        self._settings = settings
        self._clock = clock

    def _login_keys(self, username: str, address: str) -> tuple[str, str]:
        return (
            throttle_key("login-account", normalize_username(username)),
            throttle_key("login-address", address),
        )

    async def check_login(self, username: str, address: str) -> None:
        """Raises TooManyLoginAttempts while the account or the address is locked."""
        now = self._clock()
        until = await self._counters.locked_until(list(self._login_keys(username, address)), now)
        if until is not None:
            raise TooManyLoginAttempts(retry_after=(until - now).total_seconds())

    async def login_failed(self, username: str, address: str) -> None:
        settings, now = self._settings, self._clock()
        forget_before = now - timedelta(seconds=settings.login_failure_window_s)
        account, by_address = self._login_keys(username, address)
        for key, threshold in (
            (account, settings.login_failures_per_account),
            (by_address, settings.login_failures_per_address),
        ):
            lock_for = backoff(
                now, threshold, settings.login_lockout_base_s, settings.login_lockout_max_s
            )
            await self._counters.count(key, now, forget_before, lock_for)
        await self._counters.prune(forget_before, now)

    async def login_succeeded(self, username: str) -> None:
        await self._counters.clear(self._login_keys(username, "")[0])

    async def register(self, address: str) -> None:
        """Counts one registration from `address`; raises TooManyRegistrations past the limit."""
        now = self._clock()
        limit = self._settings.registrations_per_address_per_hour

        def lock_for(count: int, first_at: datetime) -> datetime | None:
            return first_at + REGISTRATION_WINDOW if count > limit else None

        counter = await self._counters.count(
            throttle_key("register-address", address),
            now,
            now - REGISTRATION_WINDOW,
            lock_for,
            fixed_window=True,
        )
        if counter.locked_until is not None:
            raise TooManyRegistrations(retry_after=(counter.locked_until - now).total_seconds())
