"""Fitting the head and choosing its hyper-parameters by cross-validation on the train split.

The head is an L2-regularised multinomial logistic regression solved by full-batch L-BFGS from
zeros: the problem is convex, so the result depends only on the data and the settings, not on a
seed. It is solved in float32, four times faster than float64 here for a final loss that differs
in the sixth digit, which keeps the whole grid search to a couple of minutes on two cores.

Folds are grouped by dialogue, because turns of one dialogue share a topic and a supporter;
splitting them across folds would reward memorising the conversation instead of the task.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from models.intent.metrics import INTENTS, summarise

# Searched by cross-validation; the grid brackets the best region found while developing.
L2_GRID = (1e-3, 3e-3)
# Class-weight exponent: 0 = plain frequencies, 1 = fully balanced. Balancing helps the rare
# intents (reflect, inform) at some cost to accuracy, and a planner that only ever says
# "question" is of little use, so the selection score weighs macro-F1 as much as accuracy.
POWER_GRID = (0.25, 0.5, 0.75)
FOLDS = 5
SEED = 0


def sample_weights(y: np.ndarray, power: float, k: int = len(INTENTS)) -> np.ndarray:
    """Per-example weights, summing to 1, that give class c a total of count_c ** (1 - power)."""
    counts = np.bincount(y, minlength=k).astype(np.float64)
    weights = (len(y) / (k * np.maximum(counts, 1.0))[y]) ** power
    return weights / weights.sum()


def fit_linear(
    x: np.ndarray, y: np.ndarray, l2: float, power: float, max_iter: int = 300
) -> tuple[np.ndarray, np.ndarray]:
    """(weight [7, dim], bias [7]) as float32; `y` holds indices into INTENTS."""
    features = torch.as_tensor(x, dtype=torch.float32)
    target = torch.as_tensor(y, dtype=torch.long)
    w = torch.as_tensor(sample_weights(y, power), dtype=torch.float32)
    weight = torch.zeros(len(INTENTS), x.shape[1], dtype=torch.float32, requires_grad=True)
    bias = torch.zeros(len(INTENTS), dtype=torch.float32, requires_grad=True)
    opt = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-7,
        tolerance_change=1e-10,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        losses = torch.nn.functional.cross_entropy(
            features @ weight.T + bias, target, reduction="none"
        )
        loss = (losses * w).sum() + 0.5 * l2 * (weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return (
        weight.detach().numpy().astype(np.float32),
        bias.detach().numpy().astype(np.float32),
    )


def grouped_folds(groups: np.ndarray, k: int = FOLDS, seed: int = SEED) -> list[np.ndarray]:
    """Boolean held-out masks; every group lands in exactly one fold."""
    unique = np.unique(groups)
    np.random.default_rng(seed).shuffle(unique)
    return [np.isin(groups, unique[i::k]) for i in range(k)]


def predict(weight: np.ndarray, bias: np.ndarray, x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float64) @ weight.T.astype(np.float64) + bias).argmax(axis=1)


def cross_validate(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, l2: float, power: float
) -> dict[str, float]:
    """Pooled out-of-fold accuracy and macro-F1, and their mean as the selection score."""
    pred = np.zeros_like(y)
    for held in grouped_folds(groups):
        weight, bias = fit_linear(x[~held], y[~held], l2, power)
        pred[held] = predict(weight, bias, x[held])
    result = summarise([INTENTS[i] for i in y], [INTENTS[i] for i in pred])
    accuracy, macro_f1 = result["accuracy"] or 0.0, result["macro_f1"] or 0.0
    return {
        "l2": l2,
        "power": power,
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "score": round((accuracy + macro_f1) / 2, 4),
    }


def search(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    l2_grid: Sequence[float] = L2_GRID,
    power_grid: Sequence[float] = POWER_GRID,
) -> list[dict[str, float]]:
    """Cross-validation results for the whole grid, best first (ties go to the earlier entry)."""
    table = [cross_validate(x, y, groups, l2, p) for l2 in l2_grid for p in power_grid]
    return sorted(table, key=lambda row: -row["score"])
