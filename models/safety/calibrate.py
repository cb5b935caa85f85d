"""Choosing the per-level thresholds from out-of-fold predictions on the training split.

The test set never takes part: the head is fitted K times, each time without one fold of the
training split, and every training message is scored by the head that did not see it. The
thresholds are then chosen on those scores, read exactly as the service reads a message (alone,
in context, the higher wins, the rules on top).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from haven.risk import RISK_LEVELS
from models.safety.head import decide
from models.safety.metrics import confusion, quadratic_weighted_kappa

HIGH = RISK_LEVELS.index("high")
MEDIUM = RISK_LEVELS.index("medium")
GRID = tuple(round(float(t), 3) for t in np.arange(0.05, 0.951, 0.025))
# A missed crisis costs more than a needless check-in, and both more than a level off by one.
MISS_COST = 3.0
OVER_COST = 1.5


@dataclass(frozen=True)
class Scored:
    """Out-of-fold probabilities of one message: alone, in context (or None), and the rules."""

    alone: np.ndarray
    joined: np.ndarray | None
    rule_level: int
    label: int


def levels(items: Sequence[Scored], thresholds: Mapping[str, float] | None) -> np.ndarray:
    alone = decide(np.stack([s.alone for s in items]), thresholds)
    joined_rows = [i for i, s in enumerate(items) if s.joined is not None]
    out = alone.copy()
    if joined_rows:
        joined = decide(np.stack([items[i].joined for i in joined_rows]), thresholds)  # type: ignore[misc]
        out[joined_rows] = np.maximum(out[joined_rows], joined)
    return np.maximum(out, np.array([s.rule_level for s in items]))


def rates(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    severe, benign = labels >= HIGH, labels < MEDIUM
    return {
        "qwk": quadratic_weighted_kappa(confusion(labels, predicted)),
        "critical_miss_rate": float((predicted[severe] < HIGH).mean()) if severe.any() else 0.0,
        "over_escalation_rate": float((predicted[benign] >= HIGH).mean()) if benign.any() else 0.0,
    }


def objective(labels: np.ndarray, predicted: np.ndarray) -> float:
    r = rates(labels, predicted)
    return r["qwk"] - MISS_COST * r["critical_miss_rate"] - OVER_COST * r["over_escalation_rate"]


def choose_thresholds(items: Sequence[Scored], rounds: int = 3) -> dict[str, float]:
    """Coordinate ascent over one threshold at a time, severe levels first."""
    labels = np.array([s.label for s in items])
    thresholds = {name: 0.5 for name in RISK_LEVELS[1:]}
    best = objective(labels, levels(items, thresholds))
    for _ in range(rounds):
        changed = False
        for name in ("high", "critical", "medium", "low"):
            for value in GRID:
                trial = {**thresholds, name: value}
                score = objective(labels, levels(items, trial))
                # Ties go to the lower threshold for high and critical: recall first.
                if score > best + 1e-9:
                    best, thresholds, changed = score, trial, True
        if not changed:
            break
    return thresholds


def high_at_miss(
    items: Sequence[Scored], thresholds: Mapping[str, float], max_miss: float
) -> dict[str, float] | None:
    """`thresholds` with the high threshold at the largest grid value whose critical-miss rate
    on `items` is at most `max_miss`; None when no grid value gets there."""
    labels = np.array([s.label for s in items])
    for value in sorted(GRID, reverse=True):
        trial = {**thresholds, "high": value}
        if rates(labels, levels(items, trial))["critical_miss_rate"] <= max_miss + 1e-12:
            return trial
    return None
