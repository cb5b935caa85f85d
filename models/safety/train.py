"""Train the safety head and report held-out metrics.

    python -m models.safety.train --data /work/shared/data \
        --out models/safety/weights/head.safetensors

The encoder is frozen; only the 384->5 logistic regression is fitted, so a run is dominated by
embedding the texts once (cached under .cache/safety-embeddings/) and then takes seconds.
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch

from haven.risk import RISK_LEVELS
from models.safety import datasets
from models.safety.classifier import DEFAULT_HEAD_PATH
from models.safety.embedding_cache import embed_cached
from models.safety.encoder import MiniLMEncoder
from models.safety.head import Head, load_head, save_head
from models.safety.metrics import summarise

__all__ = ["fit_head", "load_head", "main", "save_head", "train_from_texts"]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
WRITTEN_PATH = pathlib.Path(__file__).resolve().parent / "data" / "written.jsonl"
CACHE_DIR = REPO_ROOT / ".cache" / "safety-embeddings"
HEAD_VERSION = "1"
# The written corpus is the only chat-register source for medium to critical (the public ones are
# long Reddit posts), so each of its examples counts for several public texts inside its level.
SOURCE_WEIGHT = {"written": 10.0}
L2_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)
VALIDATION_FRACTION = 0.15
DEFAULT_L2 = 1e-4


def class_balanced_weights(labels: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
    """Scale `base` so every level present carries the same total weight."""
    base = np.ones(len(labels)) if base is None else base.astype(np.float64)
    weights = base.copy()
    present = np.unique(labels)
    for level in present:
        mask = labels == level
        weights[mask] *= base.sum() / (len(present) * base[mask].sum())
    return weights


def fit_head(
    embeddings: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    sample_weight: np.ndarray | None = None,
    l2: float = DEFAULT_L2,
    max_iter: int = 500,
) -> Head:
    """Class-balanced, L2-regularised multinomial logistic regression, solved by full-batch L-BFGS.

    The problem is convex and starts from zeros, so the result depends only on the data.
    """
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    x = torch.as_tensor(embeddings, dtype=torch.float64)
    w = torch.as_tensor(class_balanced_weights(y.numpy(), sample_weight), dtype=torch.float64)
    w = w / w.sum()
    k = len(RISK_LEVELS)
    weight = torch.zeros(k, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        losses = torch.nn.functional.cross_entropy(x @ weight.T + bias, y, reduction="none")
        loss = (losses * w).sum() + 0.5 * l2 * (weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return Head(
        weight=weight.detach().numpy().astype(np.float32),
        bias=bias.detach().numpy().astype(np.float32),
    )


def train_from_texts(
    texts: Sequence[str],
    labels: Sequence[str | int],
    encoder: MiniLMEncoder | None = None,
    l2: float = DEFAULT_L2,
) -> Head:
    """Embed in-memory texts and fit a head; labels are level names or indices."""
    y = np.array([RISK_LEVELS.index(v) if isinstance(v, str) else int(v) for v in labels])
    x = (encoder or MiniLMEncoder()).encode(list(texts))
    return fit_head(x, y, l2=l2)


def _source_weights(examples: Sequence[datasets.Example]) -> np.ndarray:
    return np.array([SOURCE_WEIGHT.get(e.source, 1.0) for e in examples])


def _score(head: Head, x: np.ndarray, y: np.ndarray) -> float:
    """Balanced accuracy, less the share of high-or-above texts missed, less twice the share of
    none/low texts raised to high-or-above: benign messages far outnumber crises in a chat, so a
    false-alert rate reaches more people than its size suggests."""
    pred = head.predict(x)
    recalls = [float((pred[y == i] == i).mean()) for i in np.unique(y)]
    high = RISK_LEVELS.index("high")
    missed = float((pred[y >= high] < high).mean()) if (y >= high).any() else 0.0
    benign = y < RISK_LEVELS.index("medium")
    false_alarm = float((pred[benign] >= high).mean()) if benign.any() else 0.0
    return float(np.mean(recalls)) - missed - 2.0 * false_alarm


def select_l2(examples: Sequence[datasets.Example], x: np.ndarray) -> float:
    """Pick the L2 strength on a group-held-out slice of the training split.

    Public and written texts are scored separately and averaged: otherwise the 1,000+ noisy public
    validation texts (user-level labels on single posts) drown the few dozen chat-style ones.
    """
    y = np.array([e.level for e in examples])
    val = np.array([datasets.bucket(e.group, "validation") < VALIDATION_FRACTION for e in examples])
    written = np.array([e.source == "written" for e in examples])
    sw = _source_weights(examples)
    scores: dict[float, float] = {}
    for l2 in L2_GRID:
        head = fit_head(x[~val], y[~val], sw[~val], l2=l2)
        domains = [d for d in (written, ~written) if (val & d).any()]
        scores[l2] = float(np.mean([_score(head, x[val & d], y[val & d]) for d in domains]))
    return max(L2_GRID, key=lambda l2: scores[l2])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_HEAD_PATH)
    parser.add_argument("--written", type=pathlib.Path, default=WRITTEN_PATH)
    parser.add_argument("--cache", type=pathlib.Path, default=CACHE_DIR)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--escalate-threshold",
        type=float,
        default=None,
        help="raise to high/critical when P(high)+P(critical) reaches this (default: argmax)",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    encoder = MiniLMEncoder(threads=args.threads)
    examples = datasets.load_public(args.data) + datasets.load_written(args.written)
    x = embed_cached(encoder, examples, args.cache)
    y = np.array([e.level for e in examples])
    train = np.array([e.split == "train" for e in examples])
    train_examples = [e for e, t in zip(examples, train, strict=True) if t]

    l2 = select_l2(train_examples, x[train])
    fitted = fit_head(x[train], y[train], _source_weights(train_examples), l2=l2)
    counts = collections.Counter(f"{e.source}/{RISK_LEVELS[e.level]}" for e in train_examples)
    summary = {
        "l2": l2,
        "train_counts": dict(sorted(counts.items())),
        "source_weight": SOURCE_WEIGHT,
        "split": "public 20% held out by user/dialogue/question, written 25% by text hash",
    }
    head = Head(
        fitted.weight,
        fitted.bias,
        version=f"{HEAD_VERSION}+{fitted.digest}",
        escalate_threshold=args.escalate_threshold,
        training=summary,
    )
    save_head(head, args.out)
    report = {"head": str(args.out), "version": head.version, "l2": l2}
    report.update(evaluate(head, examples, x, ~train))
    report["seconds"] = round(time.perf_counter() - started, 1)
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


def evaluate(
    head: Head, examples: Sequence[datasets.Example], x: np.ndarray, test: np.ndarray
) -> dict[str, object]:
    """Metrics on the held-out public and written texts, and false crisis alerts per source."""
    y = np.array([e.level for e in examples])
    sources = np.array([e.source for e in examples])
    written = sources == "written"
    pred = head.predict(x)
    severe = pred >= RISK_LEVELS.index("high")
    benign = test & (y < RISK_LEVELS.index("medium"))
    return {
        "escalate_threshold": head.escalate_threshold,
        "public_test": summarise(y[test & ~written], pred[test & ~written]),
        "written_test": summarise(y[test & written], pred[test & written]),
        # Share of none/low held-out texts that would have triggered a crisis response.
        "benign_false_high_rate": {
            str(s): round(float(severe[benign & (sources == s)].mean()), 4)
            for s in sorted(set(sources[benign]))
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())
