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


def per_level_prf(matrix: np.ndarray) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1 and support of each level (0 where undefined)."""
    out: dict[str, dict[str, float | int]] = {}
    for i, name in enumerate(RISK_LEVELS):
        support, predicted, hit = matrix[i].sum(), matrix[:, i].sum(), matrix[i, i]
        precision = hit / predicted if predicted else 0.0
        recall = hit / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
            "support": int(support),
        }
    return out


def report(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, object]:
    """The evaluation summary: macro F1 over the levels present, QWK, the two safety rates,
    per-level precision/recall/F1 and the confusion matrix (rows = label)."""
    matrix = confusion(y_true, y_pred)
    levels = per_level_prf(matrix)
    present = [v["f1"] for v in levels.values() if v["support"]]
    severe, benign = y_true >= _HIGH, y_true < _HIGH - 1
    qwk = quadratic_weighted_kappa(matrix)
    return {
        "n": len(y_true),
        "macro_f1": round(float(np.mean(present)), 4) if present else None,
        "quadratic_weighted_kappa": None if np.isnan(qwk) else round(qwk, 4),
        "critical_miss_rate": _ratio(float((y_pred[severe] < _HIGH).sum()), severe.sum()),
        "over_escalation_rate": _ratio(float((y_pred[benign] >= _HIGH).sum()), benign.sum()),
        "per_level": levels,
        "confusion": matrix.tolist(),
    }
