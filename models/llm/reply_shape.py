"""The enforceable part of a reply's shape: at most N sentences, and one turn only.

A supporter's turn is 1-4 sentences; a small model tends to run on, and, when it does, to write
the person's next message or a second reply ("User: ...", a blank line and a new paragraph).
`ReplyShape` watches the streamed text and says how much of each piece to send and when to stop
decoding. It is pure (no model, no tokenizer) so any backend can use it on its text deltas.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_MAX_SENTENCES = 4
# Same notion of a sentence end as `models.llm.text`: a letter or closer, terminal punctuation,
# optional closers; a digit before the point ("1.", "2.5") is not an end.
_CLOSERS = ")\"'\u201d\u2019"
_END = re.compile(rf"(?:[^\W\d_]|[{_CLOSERS}])[.!?\u2026]+[{_CLOSERS}]*(?=\s|$)")
# A new turn written into the reply: a role label at a line start, or a blank line.
_ROLES = r"user|assistant|system|human|person|seeker|supporter|haven|me|you|ai|bot"
_TURN_BREAK = re.compile(rf"\n[ \t]*(?:(?:{_ROLES})[ \t]*:|\n)", re.IGNORECASE)
# What may still grow into a turn break: a newline followed by at most a short word.
_MAYBE_BREAK = re.compile(r"\n[ \t]*[A-Za-z]{0,10}[ \t]*$")


def count_sentences(text: str) -> int:
    """Sentence ends in `text`, as the bound counts them."""
    return len(_END.findall(text))


def sentence_ends(text: str) -> list[int]:
    """Where each sentence the bound counts ends in `text` (after its closers)."""
    return [end.end() for end in _END.finditer(text)]


@dataclass(frozen=True, slots=True)
class Piece:
    send: str  # the part of the delta to send now
    stop: bool  # True: the reply is complete; stop decoding and send nothing more


class ReplyShape:
    """Feed each text delta to `add`; stop when it says so, else call `finish` at the end."""

    def __init__(self, max_sentences: int = DEFAULT_MAX_SENTENCES) -> None:
        if max_sentences < 1:
            raise ValueError("max_sentences must be at least 1")
        self._max = max_sentences
        self._sent = ""  # released so far
        self._held = ""  # a line start that may still become a role label
        self._done = False

    @property
    def text(self) -> str:
        """The reply as released so far."""
        return self._sent

    @property
    def sentences(self) -> int:
        return count_sentences(self._sent)

    def add(self, delta: str) -> Piece:
        if self._done:
            return Piece("", True)
        pending = self._held + delta
        self._held = ""
        stop = False
        brk = _TURN_BREAK.search(self._sent[-1:] + pending)
        if brk is not None:
            # Offset by the one character of context searched in front of `pending`.
            pending, stop = pending[: max(brk.start() - len(self._sent[-1:]), 0)], True
        else:
            maybe = _MAYBE_BREAK.search(pending)
            if maybe is not None:
                pending, self._held = pending[: maybe.start()], pending[maybe.start() :]
        pending, capped = self._cap(pending)
        return self._release(pending.rstrip() if stop or capped else pending, stop or capped)

    def finish(self) -> str:
        """The rest to send when the model stopped by itself (end-of-turn token or length)."""
        if self._done:
            return ""
        held, self._held = self._held, ""
        self._done = True
        # A lone trailing word on a new line is kept; whitespace alone is not worth sending.
        rest, _ = self._cap(held.rstrip())
        self._sent += rest
        return rest

    def _cap(self, pending: str) -> tuple[str, bool]:
        """`pending` cut right after the sentence end that reaches the bound, if it has one."""
        ends = list(_END.finditer(self._sent + pending))
        if len(ends) < self._max:
            return pending, False
        cut = ends[self._max - 1].end() - len(self._sent)
        return pending[: max(cut, 0)], True

    def _release(self, send: str, stop: bool) -> Piece:
        self._sent += send
        if stop:
            self._done, self._held = True, ""
        return Piece(send, stop)
