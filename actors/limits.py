"""Per-user rate limits: a token bucket for messages, a sliding window for new connections."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

Clock = Callable[[], float]


class TokenBucket:
    """`burst` tokens at most, refilled at `rate` per second; one token per message."""

    def __init__(self, burst: int, rate: float, clock: Clock = time.monotonic) -> None:
        self._burst = float(burst)
        self._rate = rate
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def take(self) -> float:
        """0.0 if a token was taken, else the seconds until one will be available."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate


class SlidingWindow:
    """At most `limit` events in any `window_s` seconds."""

    def __init__(self, limit: int, window_s: float, clock: Clock = time.monotonic) -> None:
        self._limit = limit
        self._window_s = window_s
        self._clock = clock
        self._events: deque[float] = deque()

    def hit(self) -> float:
        """0.0 if the event is allowed (and counted), else the seconds until it would be."""
        now = self._clock()
        while self._events and now - self._events[0] >= self._window_s:
            self._events.popleft()
        if len(self._events) >= self._limit:
            return self._window_s - (now - self._events[0])
        self._events.append(now)
        return 0.0

    @property
    def active(self) -> bool:
        """Whether any counted event is still inside the window."""
        now = self._clock()
        return bool(self._events) and now - self._events[-1] < self._window_s
