"""Turning a model's output into reply text: whole characters, and whole sentences at the end."""

from __future__ import annotations

import re
from typing import Any

# Within this many tokens of the length bound a reply stops at the first sentence end, and its
# text is released a sentence at a time so that a reply cut by the bound still ends whole.
SENTENCE_END_WINDOW = 25
# A letter (or closing bracket/quote), terminal punctuation, optional closers. Requiring a
# letter first keeps list numbers such as "1." and decimals from counting as sentence ends.
_CLOSERS = ")\"'\u201d\u2019"
_END = rf"(?:[^\W\d_]|[{_CLOSERS}])[.!?\u2026]+[{_CLOSERS}]*"
_SENTENCE_END = re.compile(rf"{_END}\s*$")
# Inside growing text an end counts once whitespace follows: "e.g" or "..." may still grow.
_SENTENCE_BREAK = re.compile(rf"{_END}(?=\s)")
_REPLACEMENT_CHAR = "\ufffd"
_CUT_MARK = "\u2026"
# Enough emitted text to recognise a sentence end behind a run of punctuation and spaces.
_TAIL_CHARS = 32


def ends_sentence(text: str) -> bool:
    return bool(_SENTENCE_END.search(text))


def sentence_window(max_new_tokens: int) -> int:
    """How many tokens before the bound the reply starts looking for its last sentence end."""
    return min(SENTENCE_END_WINDOW, max_new_tokens // 4)


class SentenceBoundedText:
    """Releases reply text as it comes, except near the length bound, where it holds back the
    unfinished sentence; `finish` then drops that sentence if the bound cut it.

    Text already sent cannot be taken back, so the holding starts only in the last
    `sentence_window` tokens, where a cut is possible: earlier text streams without delay.
    """

    def __init__(self, max_new_tokens: int) -> None:
        self._hold_from = max_new_tokens - sentence_window(max_new_tokens)
        self._held = ""
        self._tail = ""

    def add(self, delta: str, tokens: int) -> str:
        """Text to send now, given the next `delta` and the reply's length so far in tokens."""
        text = self._held + delta
        if tokens < self._hold_from:
            self._held = ""
            return self._emit(text)
        # Searched with the released tail in front: a sentence end can straddle the two.
        seen = self._tail + text
        cut = max((m.end() for m in _SENTENCE_BREAK.finditer(seen)), default=0)
        cut = max(cut - len(self._tail), 0)
        self._held = text[cut:]
        return self._emit(text[:cut])

    def finish(self, cut_by_bound: bool) -> str:
        """The rest to send once the model has stopped; `cut_by_bound`: it hit the length bound."""
        held, self._held = self._held, ""
        if not cut_by_bound or ends_sentence(held):
            return self._emit(held)
        if not held.strip() or ends_sentence(self._tail):
            # The reply so far ends with a whole sentence; the one the bound cut is dropped.
            return ""
        # No sentence ended anywhere near the bound: keep whole words and show the cut.
        words = held.rstrip()
        boundary = max(words.rfind(" "), words.rfind("\n"))
        kept = words[: max(boundary, 0)].rstrip(" ,;:-\u2013\u2014\n")
        if not kept and not self._tail.strip():
            return ""
        return self._emit(kept + _CUT_MARK)

    def _emit(self, text: str) -> str:
        if text:
            self._tail = (self._tail + text)[-_TAIL_CHARS:]
        return text


class IncrementalDetokenizer:
    """Turns a growing list of token ids into text deltas.

    Decoding the whole reply each time (cheap at reply lengths) keeps spaces exactly as a full
    decode has them; per-token decoding loses or invents spaces with some tokenizers. A delta is
    held back while the text ends in U+FFFD, i.e. while a multi-byte character is still split
    across tokens, so a client never receives half a character.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._emitted = 0

    @property
    def text(self) -> str:
        return self._decode().rstrip(_REPLACEMENT_CHAR)

    def add(self, token_id: int) -> str:
        self._ids.append(token_id)
        text = self._decode()
        if text.endswith(_REPLACEMENT_CHAR):
            return ""
        return self._take(text)

    def flush(self) -> str:
        """Whatever complete text is still held back; a dangling partial character is dropped."""
        return self._take(self.text)

    def _take(self, text: str) -> str:
        delta = text[self._emitted :]
        self._emitted = len(text)
        return delta

    def _decode(self) -> str:
        text: str = self._tokenizer.decode(
            self._ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return text
