"""Train the intent planner on ESConv and report its metrics on ESConv's valid split.

    python -m models.intent.train [--data ../shared/data] [--out models/intent/weights/...]

Hyper-parameters are chosen by dialogue-grouped cross-validation on train only; valid is scored
once, by the chosen head, next to the majority-class baseline. The encoder is frozen and turn
embeddings are cached under .cache/intent-embeddings/, so a retrain after the first one only
re-fits the logistic regression.
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import sys
import time

import numpy as np
import torch

from models.intent import esconv, fit
from models.intent.embeddings import CACHE_DIR, REPO_ROOT, cached_embedder
from models.intent.features import Recipe, featurise
from models.intent.head import PlannerHead, save_head
from models.intent.metrics import INTENTS, Metrics, majority_baseline, summarise
from models.intent.planner import DEFAULT_WEIGHTS_PATH
from models.safety.encoder import MiniLMEncoder

HEAD_VERSION = "1"
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_WEIGHTS_PATH)
    parser.add_argument("--cache", type=pathlib.Path, default=CACHE_DIR)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--l2", type=float, nargs="+", default=list(fit.L2_GRID), help="L2 values to search"
    )
    parser.add_argument(
        "--power", type=float, nargs="+", default=list(fit.POWER_GRID), help="class-weight powers"
    )
    return parser.parse_args(argv)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> Metrics:
    args = _arguments(argv)
    started = time.perf_counter()
    # Fixed threads keep the float reduction order, and so the weights, the same run to run.
    torch.set_num_threads(args.threads)
    recipe = Recipe()
    encoder: list[MiniLMEncoder] = []

    def load_encoder() -> MiniLMEncoder:
        if not encoder:
            encoder.append(MiniLMEncoder(threads=args.threads, max_length=recipe.max_tokens))
        return encoder[0]

    embed = cached_embedder(load_encoder, recipe.max_tokens, args.cache)
    train = esconv.load_split(args.data, "train")
    valid = esconv.load_split(args.data, "valid")
    x_train = featurise([e.context for e in train], recipe, embed)
    x_valid = featurise([e.context for e in valid], recipe, embed)
    y_train = np.array([INTENTS.index(e.intent) for e in train])
    groups = np.array([e.dialogue for e in train])
    _log(f"features ready after {time.perf_counter() - started:.0f}s: {x_train.shape}")

    table = fit.search(x_train, y_train, groups, args.l2, args.power)
    for row in table:
        _log(f"cv {json.dumps(row)}")
    best = table[0]
    weight, bias = fit.fit_linear(x_train, y_train, best["l2"], best["power"])

    bare = PlannerHead(weight, bias, recipe=recipe)
    probabilities = bare.probabilities(x_valid)
    predicted = [INTENTS[i] for i in probabilities.argmax(axis=1)]
    metrics = summarise([e.intent for e in valid], predicted)
    baseline = majority_baseline([e.intent for e in train], [e.intent for e in valid])
    training = {
        "data": "ESConv train (Liu et al., ACL 2021), CC BY-NC 4.0",
        "label": "strategy of the first utterance of each supporter turn; Self-disclosure dropped",
        "train_examples": dict(sorted(collections.Counter(e.intent for e in train).items())),
        "train_dialogues": len(set(groups.tolist())),
        "l2": best["l2"],
        "class_weight_power": best["power"],
        "cv": {"folds": fit.FOLDS, "grouped_by": "dialogue", "seed": fit.SEED, "grid": table},
        "valid": {k: metrics[k] for k in ("n", "accuracy", "macro_f1")},
        "valid_majority_baseline": baseline,
    }
    version = f"{HEAD_VERSION}+{bare.digest}"
    head = PlannerHead(weight, bias, recipe=recipe, version=version, training=training)
    save_head(head, args.out)
    report = {
        "weights": str(args.out),
        "version": head.version,
        "chosen": {"l2": best["l2"], "class_weight_power": best["power"]},
        "valid": metrics,
        "valid_majority_baseline": baseline,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=2))
    return metrics


if __name__ == "__main__":
    main()
