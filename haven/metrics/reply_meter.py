"""One reply's decode speed, measured where its tokens are produced (the generator replica)."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


class ReplyMeter:
    """Tokens after the first text piece, over the time from that piece to the last.

    Leaving out the first piece leaves out the queue wait and the prompt's prefill, so the rate
    is the model's speed on this hardware. With a tokenizer the tokens are counted exactly;
    without one (a remote OpenAI-compatible server) each streamed piece counts as one token,
    which is what such servers send.
    """

    def __init__(
        self, count_tokens: Callable[[str], int] | None, clock: Clock = time.perf_counter
    ) -> None:
        self._count_tokens = count_tokens
        self._clock = clock
        self._pieces: list[str] = []
        self._first_at: float | None = None
        self._last_at = 0.0

    def piece(self, text: str) -> None:
        now = self._clock()
        if self._first_at is None:
            self._first_at = now
        self._last_at = now
        self._pieces.append(text)

    def tokens_per_s(self) -> float | None:
        """None when there is no interval to measure (fewer than two pieces)."""
        if self._first_at is None or self._last_at <= self._first_at:
            return None
        if self._count_tokens is not None:
            whole = self._count_tokens("".join(self._pieces))
            after_first = whole - self._count_tokens(self._pieces[0])
        else:
            after_first = len(self._pieces) - 1
        if after_first <= 0:
            return None
        return after_first / (self._last_at - self._first_at)
