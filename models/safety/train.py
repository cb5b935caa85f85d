"""Train the default safety head, choose its thresholds, and report held-out metrics.

    python -m models.safety.train --data ../shared/data
    python -m models.safety.train --data ../shared/data --encoder mpnet --max-miss 0.04
    python -m models.safety.train --data ../shared/data --encoder e5 --max-miss 0.04

The encoder is frozen; a run embeds each text once (cached under .cache/safety-embeddings/),
fits the head K times on folds of the training split to choose the per-level thresholds from
out-of-fold scores (of the written items on the route the head serves: `--route`), fits it once
more on the whole training split, and evaluates it on the held-out written test set and the
held-out public texts, neither of which it has seen.
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
from models.llm.prepare import DEFAULT_CACHE_DIR
from models.safety import corpus, datasets, e5, language, mpnet, ngrams, rules
from models.safety.calibrate import Scored, choose_thresholds, high_at_miss, levels, rates
from models.safety.classifier import DEFAULT_HEAD_PATH, E5_HEAD_PATH, MPNET_HEAD_PATH
from models.safety.embedding_cache import embed_cached
from models.safety.encoder import SentenceEncoder, TextEncoder, fast_dtype
from models.safety.fit import FitConfig, fit_head
from models.safety.head import Head, save_head
from models.safety.metrics import summarise

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".cache" / "safety-embeddings"
HEAD_VERSION = "2"
FOLDS = 5
# The written corpus is the only chat-register source for medium to critical (the public ones are
# long Reddit posts), so each of its examples counts for several public texts inside its level.
SOURCE_WEIGHT = {"written": 30.0, "conversations": 30.0}
ALONE = "conversation_last"  # a conversation's last message alone: scored, never trained on


def _rows(examples: Sequence[datasets.Example]) -> dict[tuple[str, str], int]:
    return {(e.source, e.group): i for i, e in enumerate(examples)}


def _scored(
    items: Sequence[corpus.WrittenItem], rows: dict[tuple[str, str], int], probs: np.ndarray
) -> list[Scored]:
    """Each written item read as the service reads it, from per-text probabilities."""
    out: list[Scored] = []
    for item in items:
        hit = rules.check(item.text, item.context[-3:])
        rule_level = hit.level.rank if hit else 0
        if item.is_conversation:
            alone = probs[rows[(ALONE, item.key)]]
            joined = probs[rows[("conversations", item.key)]]
            out.append(Scored(alone, joined, rule_level, item.level))
        else:
            out.append(Scored(probs[rows[("written", item.key)]], None, rule_level, item.level))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="default: by encoder")
    parser.add_argument(
        "--encoder",
        choices=("minilm", "mpnet", "e5"),
        default="minilm",
        help="minilm: the default classifier; mpnet: the cascade's second reader; e5: its "
        "second reader for the trained languages other than English",
    )
    parser.add_argument(
        "--route",
        choices=("all", *(r.value for r in language.Route)),
        default=None,
        help="choose the thresholds on the written items of this route only "
        "(default: trained for e5, all otherwise)",
    )
    parser.add_argument("--model-cache", type=pathlib.Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument(
        "--max-miss",
        type=float,
        default=None,
        help="then move the high threshold to the largest value whose out-of-fold critical "
        "miss rate is at most this",
    )
    parser.add_argument(
        "--route-weight",
        type=float,
        default=1.0,
        help="multiply the training weight of the written messages on --route by this",
    )
    parser.add_argument(
        "--oof-out",
        type=pathlib.Path,
        default=None,
        help="also save the out-of-fold probabilities of every text (.npz), to compare readers",
    )
    parser.add_argument("--written", type=pathlib.Path, default=corpus.WRITTEN_DIR)
    parser.add_argument("--cache", type=pathlib.Path, default=CACHE_DIR)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folds", type=int, default=FOLDS)
    parser.add_argument("--epochs", type=int, default=FitConfig.epochs)
    parser.add_argument("--hidden", type=int, default=FitConfig.hidden)
    parser.add_argument(
        "--ensemble",
        type=int,
        default=FitConfig.ensemble,
        help="fit this many heads from consecutive seeds and average their logits (one head file)",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    config = FitConfig(epochs=args.epochs, hidden=args.hidden, ensemble=args.ensemble)
    items = corpus.load_written(args.written)
    alone = [
        datasets.Example(i.text, i.level, ALONE, i.key, i.split) for i in items if i.is_conversation
    ]
    examples = datasets.load_public(args.data) + corpus.to_examples(items) + alone
    if args.out is None:
        args.out = {"mpnet": MPNET_HEAD_PATH, "e5": E5_HEAD_PATH}.get(
            args.encoder, DEFAULT_HEAD_PATH
        )
    if args.route is None:
        args.route = language.Route.TRAINED.value if args.encoder == "e5" else "all"
    encoder: TextEncoder
    if args.encoder == "e5":
        encoder = e5.E5Encoder(e5.prepared_dir(args.model_cache), threads=args.threads)
    else:
        encoder_path = mpnet.prepared_dir(args.model_cache) if args.encoder == "mpnet" else None
        # mpnet is read in the dtype it is served in (bf16 where the CPU has it, `fast_dtype`,
        # which measured MiniLM at a third of float32's time). MiniLM keeps float32, which its
        # cached features have.
        dtype = fast_dtype("cpu") if args.encoder == "mpnet" else None
        encoder = SentenceEncoder(encoder_path, threads=args.threads, dtype=dtype)
    x = embed_cached(encoder, examples, args.cache)
    feats = [ngrams.featurise(e.text, config.buckets) for e in examples]
    y = np.array([e.level for e in examples])
    weight = np.array([SOURCE_WEIGHT.get(e.source, 1.0) for e in examples])
    if args.route_weight != 1.0 and args.route != "all":
        # The route's own written messages count more, for a head that serves only that route.
        on_route = [
            e.source in SOURCE_WEIGHT and language.route(e.text).value == args.route
            for e in examples
        ]
        weight = np.where(on_route, weight * args.route_weight, weight)
    train = np.array([e.split == "train" and e.source != ALONE for e in examples])
    rows = _rows(examples)

    def fit(mask: np.ndarray) -> Head:
        idx = np.flatnonzero(mask)
        texts = [examples[i].text for i in idx]
        return fit_head(x[idx], texts, y[idx], weight[idx], config, [feats[i] for i in idx])

    def probabilities(head: Head) -> np.ndarray:
        return head.probabilities(x, [e.text for e in examples])

    # Out-of-fold scores for every training item: folds by group, so no user, dialogue or
    # conversation is on both sides.
    fold = np.array([int(datasets.bucket(e.group, "fold") * args.folds) for e in examples])
    oof = np.zeros((len(examples), len(RISK_LEVELS)))
    for k in range(args.folds):
        held = fold == k
        oof[held] = probabilities(fit(train & ~held))[held]
        print(f"fold {k + 1}/{args.folds} done", file=sys.stderr, flush=True)
    if args.oof_out is not None:
        np.savez_compressed(
            args.oof_out,
            oof=oof,
            source=np.array([e.source for e in examples]),
            group=np.array([e.group for e in examples]),
        )
    train_items = [
        i
        for i in items
        if i.split == "train" and args.route in ("all", language.route(i.text).value)
    ]
    oof_scored = _scored(train_items, rows, oof)
    thresholds = choose_thresholds(oof_scored)
    if args.max_miss is not None:
        moved = high_at_miss(oof_scored, thresholds, args.max_miss)
        if moved is None:
            parser.error(f"no high threshold reaches an out-of-fold miss rate of {args.max_miss}")
        thresholds = moved
    oof_labels = np.array([s.label for s in oof_scored])
    cross_validated = rates(oof_labels, levels(oof_scored, thresholds))
    # What moving the high threshold alone would trade, for operators who weigh it differently.
    tradeoff = {
        str(t): rates(oof_labels, levels(oof_scored, {**thresholds, "high": t}))
        for t in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    }

    fitted = fit(train)
    counts = collections.Counter(
        f"{examples[i].source}/{RISK_LEVELS[y[i]]}" for i in np.flatnonzero(train)
    )
    summary = {
        **fitted.training,
        "train_counts": dict(sorted(counts.items())),
        "source_weight": SOURCE_WEIGHT,
        "split": "public 20% held out by user/dialogue/question; written 20% of each file and "
        "level by text hash",
        "thresholds_from": f"{args.folds}-fold out-of-fold scores on the training split"
        + ("" if args.route == "all" else f", written items on route {args.route}")
        + ("" if args.max_miss is None else f", high at critical miss <= {args.max_miss}"),
        "encoder": encoder.name,
    }
    # The version ends in a digest of the weights, so any retrained head gets a new one.
    version = f"{HEAD_VERSION}+{fitted.digest}"
    head = Head(fitted.tensors, version=version, thresholds=thresholds, training=summary)
    save_head(head, args.out)

    probs = probabilities(head)
    report: dict[str, object] = {
        "head": str(args.out),
        "version": head.version,
        "thresholds": thresholds,
    }
    report["written_train_out_of_fold"] = cross_validated
    report["out_of_fold_high_threshold_tradeoff"] = tradeoff
    report.update(evaluate(head, examples, items, rows, probs))
    report["seconds"] = round(time.perf_counter() - started, 1)
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


def evaluate(
    head: Head,
    examples: Sequence[datasets.Example],
    items: Sequence[corpus.WrittenItem],
    rows: dict[tuple[str, str], int],
    probs: np.ndarray,
) -> dict[str, object]:
    """Held-out written test set (per file too) and public texts, read as the service reads them."""
    test_items = [i for i in items if i.split == "test"]
    scored = _scored(test_items, rows, probs)
    pred = levels(scored, head.thresholds)
    truth = np.array([s.label for s in scored])
    files = np.array([i.file for i in test_items])
    written: dict[str, object] = {**rates(truth, pred), **summarise(truth, pred)}
    per_file = {f: rates(truth[files == f], pred[files == f]) for f in sorted(set(files))}
    public = np.array([e.split == "test" and e.source in datasets.PUBLIC_SOURCES for e in examples])
    public_pred = head.decide(probs[public])
    return {
        "written_test": written,
        "written_test_by_file": per_file,
        "public_test": summarise(np.array([e.level for e in examples])[public], public_pred),
    }


if __name__ == "__main__":
    raise SystemExit(main())
