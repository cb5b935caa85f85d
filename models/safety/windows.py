"""Long texts read whole: overlapping windows of the encoder's length, pooled by the maximum.

The encoder reads at most `encoder.MAX_LENGTH` tokens; a forum post of several paragraphs used to
be cut there, so a plan written in its last paragraph was never read. Now a text longer than one
window is split into windows of `size` tokens that overlap by `overlap` tokens (a sentence cut at
one window's edge is whole in the next), every window is scored, and the text gets, for every
level L, the highest P(level >= L) of its windows. That is the text's most severe window at every
level at once, and still a distribution: a maximum of non-increasing sequences is non-increasing.
A single worrying paragraph therefore counts as much in a long post as it would alone; a long
post of ordinary distress is no more alarming than its worst window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Room for [CLS] and [SEP] in a 256-token window.
SIZE = 254
OVERLAP = 64


def split(tokenizer: Any, text: str, size: int = SIZE, overlap: int = OVERLAP) -> list[str]:
    """`text` itself if it fits in one window, else its overlapping windows, in order.

    A word-piece covers at least one character, so a text of at most `size` characters always
    fits and is not tokenised here.
    """
    if not 0 <= overlap < size:
        raise ValueError(f"overlap {overlap} must be below the window size {size}")
    if len(text) <= size:
        return [text]
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    if len(offsets) <= size:
        return [text]
    # Windows every `size - overlap` tokens; the last one ends at the text's end, full size.
    last = len(offsets) - size
    starts = [*range(0, last, size - overlap), last]
    return [text[offsets[s][0] : offsets[s + size - 1][1]] for s in starts]


def pool_max(probabilities: np.ndarray) -> np.ndarray:
    """One distribution from a window's rows: for every level L, the highest P(level >= L)."""
    at_least = np.cumsum(probabilities[:, ::-1], axis=1)[:, ::-1].max(axis=0)
    pooled = at_least - np.append(at_least[1:], 0.0)
    return np.clip(pooled, 0.0, 1.0)


def split_all(
    tokenizer: Any, texts: Sequence[str], size: int = SIZE, overlap: int = OVERLAP
) -> tuple[list[str], list[int]]:
    """Every window of every text, in order, and the index of the text each belongs to, so a
    model scores them all in one pass (`pool_by_owner` then gives one row per text)."""
    windows: list[str] = []
    owners: list[int] = []
    for index, text in enumerate(texts):
        pieces = split(tokenizer, text, size, overlap)
        windows.extend(pieces)
        owners.extend([index] * len(pieces))
    return windows, owners


def pool_by_owner(probabilities: np.ndarray, owners: Sequence[int], n: int) -> np.ndarray:
    """Rows of windows pooled per text: `owners[i]` is the text window row i belongs to; the
    rows as they are when every text was one window."""
    if len(owners) == n:
        return probabilities
    owners_arr = np.asarray(owners)
    out = np.empty((n, probabilities.shape[1]), dtype=probabilities.dtype)
    for index in range(n):
        rows = probabilities[owners_arr == index]
        out[index] = rows[0] if len(rows) == 1 else pool_max(rows)
    return out
