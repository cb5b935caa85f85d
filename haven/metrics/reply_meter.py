"""One reply's decode speed, measured where its tokens are produced (the generator replica)."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


class ReplyMeter:
    """Tokens after the first text piece, over the time from that piece to the last.

    Leaving out the first piece leaves out the queue wait and the prompt's prefill, so the rate
    is the model's speed on this hardware. A reply that arrives in one piece (a chosen draft's
    first sentence with nothing after it) is measured instead from `started()`, when its intent
    was chosen, so its rate also counts any wait for a batch place and the prefill. With a
    tokenizer the tokens are counted exactly; without one (a remote OpenAI-compatible server)
    each streamed piece counts as one token, which is what such servers send.
    """

    def __init__(
        self, count_tokens: Callable[[str], int] | None, clock: Clock = time.perf_counter
    ) -> None:
        self._count_tokens = count_tokens
        self._clock = clock
        self._pieces: list[str] = []
        self._first_at: float | None = None
        self._last_at = 0.0
        self._started_at: float | None = None

    def started(self) -> None:
        """The reply's intent is chosen; its prompt goes to the model next."""
        self._started_at = self._clock()

    def piece(self, text: str) -> None:
        now = self._clock()
        if self._first_at is None:
            self._first_at = now
        self._last_at = now
        self._pieces.append(text)

    def tokens_per_s(self) -> float | None:
        """None when there is no interval to measure."""
        if self._first_at is None:
            return None
        if len(self._pieces) == 1 and self._count_tokens is not None:
            if self._started_at is None or self._first_at <= self._started_at:
                return None
            return self._count_tokens(self._pieces[0]) / (self._first_at - self._started_at)
        if self._last_at <= self._first_at:
            return None
        if self._count_tokens is not None:
            whole = self._count_tokens("".join(self._pieces))
            after_first = whole - self._count_tokens(self._pieces[0])
        else:
            after_first = len(self._pieces) - 1
        if after_first <= 0:
            return None
        return after_first / (self._last_at - self._first_at)
