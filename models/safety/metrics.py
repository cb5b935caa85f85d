"""Evaluation measures for an ordinal five-level classifier."""

from __future__ import annotations

import numpy as np

from haven.risk import RISK_LEVELS

_HIGH = RISK_LEVELS.index("high")


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int = len(RISK_LEVELS)) -> np.ndarray:
    """Rows are true levels, columns predicted levels."""
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def quadratic_weighted_kappa(matrix: np.ndarray) -> float:
    """Agreement that penalises a miss by the squared distance between levels (1 = perfect)."""
    k = matrix.shape[0]
    total = matrix.sum()
    if total == 0:
        return float("nan")
    grid = np.arange(k)
    penalty = (grid[:, None] - grid[None, :]) ** 2 / (k - 1) ** 2
    expected = np.outer(matrix.sum(axis=1), matrix.sum(axis=0)) / total
    denom = (penalty * expected).sum()
    return float(1.0 - (penalty * matrix).sum() / denom) if denom else float("nan")


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


def summarise(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, object]:
    """Per-level recall/precision, kappa, the high-or-above detection rate and the matrix."""
    matrix = confusion(y_true, y_pred)
    per_level: dict[str, dict[str, float | int | None]] = {}
    for i, name in enumerate(RISK_LEVELS):
        per_level[name] = {
            "support": int(matrix[i].sum()),
            "recall": _ratio(matrix[i, i], matrix[i].sum()),
            "precision": _ratio(matrix[i, i], matrix[:, i].sum()),
        }
    severe_true = y_true >= _HIGH
    severe_pred = y_pred >= _HIGH
    return {
        "n": len(y_true),
        "accuracy": _ratio(float((y_true == y_pred).sum()), len(y_true)),
        "qwk": round(quadratic_weighted_kappa(matrix), 4),
        "high_or_above": {
            "recall": _ratio(float((severe_true & severe_pred).sum()), float(severe_true.sum())),
            "precision": _ratio(float((severe_true & severe_pred).sum()), float(severe_pred.sum())),
        },
        "per_level": per_level,
        "confusion": {"labels": list(RISK_LEVELS), "rows_true_cols_pred": matrix.tolist()},
    }
