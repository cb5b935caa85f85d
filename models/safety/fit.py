"""Fitting the head: a one-hidden-layer network over the embedding plus a linear n-gram layer.

Mini-batch AdamW with class-balanced, per-source weighted cross-entropy. Seeds fix the
initialisation, dropout and batch order, so a run on the same data gives the same head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from haven.risk import RISK_LEVELS
from models.safety import ngrams
from models.safety.head import Head


@dataclass(frozen=True)
class FitConfig:
    hidden: int = 512
    epochs: int = 15
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-2
    dropout: float = 0.3
    # L2 on the n-gram weights: they see every rare word, so they overfit first without it.
    ngram_l2: float = 1e-4
    buckets: int = ngrams.BUCKETS
    seed: int = 13
    # Heads fitted from seeds seed, seed + 1, ... and folded into one (`merged_tensors`).
    ensemble: int = 1

    def summary(self) -> dict[str, object]:
        return asdict(self)


def class_balanced_weights(labels: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
    """Scale `base` so every level present carries the same total weight."""
    base = np.ones(len(labels)) if base is None else base.astype(np.float64)
    weights = base.copy()
    present = np.unique(labels)
    for level in present:
        mask = labels == level
        weights[mask] *= base.sum() / (len(present) * base[mask].sum())
    return weights


class _Net(torch.nn.Module):
    def __init__(self, dim: int, config: FitConfig) -> None:
        super().__init__()
        k = len(RISK_LEVELS)
        self.drop = torch.nn.Dropout(config.dropout)
        self.hidden = torch.nn.Linear(dim, config.hidden)
        self.out = torch.nn.Linear(config.hidden, k)
        self.ngram = torch.nn.EmbeddingBag(config.buckets, k, mode="sum")
        torch.nn.init.zeros_(self.ngram.weight)

    def forward(
        self, x: torch.Tensor, index: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:
        h = torch.relu(self.hidden(self.drop(x)))
        return self.out(self.drop(h)) + self.ngram(index, offsets, per_sample_weights=values)


def _bags(
    feats: Sequence[tuple[np.ndarray, np.ndarray]], rows: np.ndarray
) -> tuple[torch.Tensor, ...]:
    parts = [feats[i] for i in rows]
    offsets = np.cumsum([0] + [len(i) for i, _ in parts[:-1]])
    index = np.concatenate([i for i, _ in parts]) if parts else np.zeros(0, np.int64)
    values = np.concatenate([v for _, v in parts]) if parts else np.zeros(0, np.float32)
    return (
        torch.as_tensor(index, dtype=torch.long),
        torch.as_tensor(offsets, dtype=torch.long),
        torch.as_tensor(values, dtype=torch.float32),
    )


def merged_tensors(heads: Sequence[Head]) -> dict[str, np.ndarray]:
    """The tensors of one head whose logits are the mean of the heads' logits, exactly.

    The logits are linear in `out` and `ngram`, so averaging them is a wider hidden layer (the
    heads' hidden units side by side) with the output weights divided by their number.
    """
    k = len(heads)
    t = [h.tensors for h in heads]
    tensors = {
        "hidden.weight": np.concatenate([h["hidden.weight"] for h in t], axis=0),
        "hidden.bias": np.concatenate([h["hidden.bias"] for h in t], axis=0),
        "out.weight": np.concatenate([h["out.weight"] for h in t], axis=1) / k,
        "out.bias": np.mean([h["out.bias"] for h in t], axis=0),
        "ngram.weight": np.mean([h["ngram.weight"] for h in t], axis=0),
    }
    return {name: array.astype(np.float32) for name, array in tensors.items()}


def fit_head(
    embeddings: np.ndarray,
    texts: Sequence[str],
    labels: np.ndarray,
    sample_weight: np.ndarray | None = None,
    config: FitConfig = FitConfig(),
    features: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
) -> Head:
    """Train on embeddings and texts (for the n-grams); `features` reuses precomputed n-grams."""
    feats = (
        features if features is not None else [ngrams.featurise(t, config.buckets) for t in texts]
    )
    if config.ensemble > 1:
        heads = [
            _fit_one(
                embeddings, labels, sample_weight, replace(config, seed=config.seed + i), feats
            )
            for i in range(config.ensemble)
        ]
        return Head(merged_tensors(heads), training={"fit": config.summary()})
    return _fit_one(embeddings, labels, sample_weight, config, feats)


def _fit_one(
    embeddings: np.ndarray,
    labels: np.ndarray,
    sample_weight: np.ndarray | None,
    config: FitConfig,
    feats: Sequence[tuple[np.ndarray, np.ndarray]],
) -> Head:
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    x = torch.as_tensor(embeddings, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.long)
    w = class_balanced_weights(np.asarray(labels), sample_weight)
    w_t = torch.as_tensor(w / w.mean(), dtype=torch.float32)
    net = _Net(x.shape[1], config)
    groups: list[dict[str, Any]] = [
        {"params": [*net.hidden.parameters(), *net.out.parameters()]},
        # The n-gram layer has its own L2 term (decoupled decay would shrink unseen rows).
        {"params": list(net.ngram.parameters()), "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(
        groups,
        lr=config.lr,
        weight_decay=config.weight_decay,
    )
    steps = config.epochs * -(-len(y) // config.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / max(steps, 1))
    net.train()
    for _ in range(config.epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            logits = net(x[rows], *_bags(feats, rows))
            loss = torch.nn.functional.cross_entropy(logits, y[rows], reduction="none")
            loss = (loss * w_t[rows]).mean()
            loss = loss + config.ngram_l2 * net.ngram.weight.pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    state = {name: t.detach().numpy().astype(np.float32) for name, t in net.state_dict().items()}
    return Head(tensors=state, training={"fit": config.summary()})
