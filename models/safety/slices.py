"""Per-slice figures for the evaluation: where the errors are.

Every labelled item belongs to several slices, each named `kind:value`:

- `language:<code>`: the detected language (`language.detect`; `und` when too short or unclear),
  and `route:<english|trained|untrained>`, the path it takes;
- `form:single` or `form:conversation` (the item has earlier messages);
- `length:short` (content-free, `content.content_free`), `length:long` (more than `LONG_CHARS`
  characters: beyond one encoder window for most text), `length:medium` otherwise;
- `file:<name>` when the input line names the written file it came from (`corpus --out` writes
  it), so `file:near_misses` is the near-miss slice.

Each slice reports n, QWK, critical-miss and over-escalation rates; `content_free_above_low`
counts content-free messages without earlier messages assessed above `low` (the goal is 0; a
conversation may raise one, on purpose).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.safety import content, language
from models.safety.calibrate import rates

LONG_CHARS = 1000
MIN_SLICE = 5


def names(text: str, context: Sequence[str], file: str | None) -> list[str]:
    detected = language.detect(text)
    out = [f"language:{detected.language}", f"route:{detected.route.value}"]
    out.append("form:conversation" if context else "form:single")
    if content.content_free(text):
        out.append("length:short")
    elif len(text) > LONG_CHARS:
        out.append("length:long")
    else:
        out.append("length:medium")
    if file:
        out.append(f"file:{file}")
    return out


def by_slice(
    y_true: np.ndarray, y_pred: np.ndarray, item_slices: Sequence[Sequence[str]]
) -> dict[str, dict[str, float | int]]:
    """Figures for every slice with at least `MIN_SLICE` labelled items, sorted by name."""
    members: dict[str, list[int]] = {}
    for index, slices in enumerate(item_slices):
        for name in slices:
            members.setdefault(name, []).append(index)
    out: dict[str, dict[str, float | int]] = {}
    for name in sorted(members):
        idx = np.array(members[name])
        if len(idx) < MIN_SLICE:
            continue
        r = rates(y_true[idx], y_pred[idx])
        out[name] = {"n": len(idx), **{k: round(v, 4) for k, v in r.items()}}
    return out


def content_free_above_low(
    items: Sequence[tuple[str, Sequence[str]]], predicted: Sequence[int]
) -> int:
    """Content-free messages without earlier messages that were assessed above `low`."""
    return sum(
        1
        for (text, context), level in zip(items, predicted, strict=True)
        if not context and content.content_free(text) and level > 1
    )
