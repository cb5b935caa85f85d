"""Which head should decide one language route: heads and their combinations compared out of fold.

    python -m models.safety.train --encoder mpnet --max-miss 0.04 --oof-out mpnet.npz --out m.st
    python -m models.safety.train --encoder e5 --max-miss 0.04 --oof-out e5.npz --out e.st
    python -m models.safety.compare_readers mpnet=mpnet.npz e5=e5.npz [--route trained]

Each `.npz` holds a head's out-of-fold probabilities for every training text (`train.py
--oof-out`, the same folds for every encoder). For the written training items of `--route`, read
as the service reads them (alone, in context, rules on top), every head alone and every pair
combined (the mean of their probabilities; "both": for every level, the lower of their
P(level or above), so a level needs both heads) gets thresholds chosen as `train.py` chooses
them, the high threshold then moved to the largest value whose miss is at most `--max-miss`.
One JSON line per reading. The test split takes no part.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import sys
from collections.abc import Callable, Sequence

import numpy as np

from models.safety import corpus, language
from models.safety.calibrate import choose_thresholds, high_at_miss, levels, rates
from models.safety.train import _scored

Combine = Callable[[np.ndarray, np.ndarray], np.ndarray]


def mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a + b) / 2


def both(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For every level L, the lower of the two P(level >= L): still a distribution, since a
    minimum of non-increasing sequences is non-increasing."""
    at_least = np.minimum(
        np.cumsum(a[:, ::-1], axis=1)[:, ::-1], np.cumsum(b[:, ::-1], axis=1)[:, ::-1]
    )
    return np.clip(at_least - np.concatenate([at_least[:, 1:], np.zeros_like(a[:, :1])], 1), 0, 1)


def _load(path: pathlib.Path) -> tuple[np.ndarray, dict[tuple[str, str], int]]:
    data = np.load(path)
    keys = zip(data["source"], data["group"], strict=True)
    rows = {(str(s), str(g)): i for i, (s, g) in enumerate(keys)}
    return data["oof"], rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("heads", nargs="+", help="name=oof.npz")
    parser.add_argument("--route", choices=[r.value for r in language.Route], default="trained")
    parser.add_argument("--max-miss", type=float, default=0.04)
    parser.add_argument("--written", type=pathlib.Path, default=corpus.WRITTEN_DIR)
    args = parser.parse_args(argv)

    items = [
        i
        for i in corpus.load_written(args.written)
        if i.split == "train" and language.route(i.text).value == args.route
    ]
    heads: dict[str, np.ndarray] = {}
    rows: dict[tuple[str, str], int] = {}
    for spec in args.heads:
        name, _, path = spec.partition("=")
        heads[name], rows = _load(pathlib.Path(path))
    readings = dict(heads)
    for (a, pa), (b, pb) in itertools.combinations(heads.items(), 2):
        readings[f"mean({a},{b})"] = mean(pa, pb)
        readings[f"both({a},{b})"] = both(pa, pb)
    labels = np.array([i.level for i in items])
    print(
        f"{len(items)} items on route {args.route}: {int((labels >= 3).sum())} high or above, "
        f"{int((labels <= 1).sum())} none or low",
        file=sys.stderr,
    )
    for name, probs in readings.items():
        scored = _scored(items, rows, probs)
        thresholds = choose_thresholds(scored)
        moved = high_at_miss(scored, thresholds, args.max_miss)
        chosen = moved if moved is not None else thresholds
        result = rates(np.array([s.label for s in scored]), levels(scored, chosen))
        line = {"reading": name, "thresholds": chosen, "at_miss": moved is not None, **result}
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in line.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
