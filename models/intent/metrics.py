"""Accuracy, macro-F1 and per-intent precision/recall/F1 for the planner's predictions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import numpy as np

INTENTS: tuple[str, ...] = (
    "validate",
    "reflect",
    "question",
    "reassure",
    "suggest",
    "inform",
    "other",
)


class Metrics(TypedDict):
    n: int
    accuracy: float | None  # None when nothing was labelled
    macro_f1: float | None
    per_intent: dict[str, dict[str, float | int]]


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def summarise(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] = INTENTS
) -> Metrics:
    """Metrics over paired labels.

    Macro-F1 averages over the intents that occur in the labels or the predictions (an intent
    absent from both says nothing about the model); precision of a never-predicted intent is 0.
    """
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    true = np.array(y_true, dtype=object)
    pred = np.array(y_pred, dtype=object)
    per_intent: dict[str, dict[str, float | int]] = {}
    f1s: list[float] = []
    for name in labels:
        hits = float(((true == name) & (pred == name)).sum())
        support = int((true == name).sum())
        predicted = int((pred == name).sum())
        precision = hits / predicted if predicted else 0.0
        recall = hits / support if support else 0.0
        f1 = _f1(precision, recall)
        per_intent[name] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": support,
        }
        if support or predicted:
            f1s.append(f1)
    n = len(true)
    return {
        "n": n,
        "accuracy": round(float((true == pred).sum()) / n, 4) if n else None,
        "macro_f1": round(float(np.mean(f1s)), 4) if f1s else None,
        "per_intent": per_intent,
    }


def majority_baseline(y_train: Sequence[str], y_eval: Sequence[str]) -> dict[str, object]:
    """Metrics of always answering the most frequent training intent."""
    values, counts = np.unique(np.array(y_train, dtype=object), return_counts=True)
    majority = str(values[counts.argmax()])
    result = summarise(y_eval, [majority] * len(y_eval))
    return {"intent": majority, "accuracy": result["accuracy"], "macro_f1": result["macro_f1"]}
