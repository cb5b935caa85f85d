"""Evaluate a crisis-risk classifier on a JSONL file, exactly as the service would assess it.

    python -m models.safety.evaluate --data FILE.jsonl --out PREDICTIONS.jsonl \
        [--model default|huggingface|cascade] [--head-path H] [--model-path DIR] \
        [--label-map '{"LABEL": "level"}'] [--thresholds '{"high": 0.3}'] \
        [--second-head-path H2] [--second-thresholds '{"high": 0.2}'] [--gate 0.05] \
        [--no-languages] [--languages-head-path H3] [--languages-thresholds '{"high": 0.3}']

Each input line is {"text": ...} or {"messages": [...]} (the last message is assessed in the
context of the earlier ones), optionally with a label under "risk_level" or "level" and the
written file it came from under "file". Writes one {"risk_level", "scores"} line per input, in
order, and prints as its last line a JSON summary over the labelled lines, with the per-slice
figures under "slices" (language, route, form, length, file: `slices.py`) and
"content_free_above_low".
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from collections.abc import Sequence

import numpy as np

from haven.risk import RISK_LEVELS
from models.safety import slices
from models.safety.cascade import CascadeModel
from models.safety.loading import ModelKind, load_risk_model
from models.safety.metrics import report
from models.safety.pipeline import RiskModel, assess_conversations


def read_items(path: pathlib.Path) -> tuple[list[tuple[str, list[str]]], list[str | None]]:
    """(message, earlier messages) and the label (or None) of every non-empty line."""
    items: list[tuple[str, list[str]]] = []
    labels: list[str | None] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if "messages" in row:
            messages = [str(m) for m in row["messages"]]
            if not messages:
                raise ValueError(f"line {n}: empty messages")
            items.append((messages[-1], messages[:-1]))
        elif "text" in row:
            items.append((str(row["text"]), []))
        else:
            raise ValueError(f"line {n}: needs 'text' or 'messages'")
        label = row.get("risk_level", row.get("level"))
        if label is not None and label not in RISK_LEVELS:
            raise ValueError(f"line {n}: unknown level {label!r}")
        labels.append(label)
    return items, labels


def read_files(path: pathlib.Path) -> list[str | None]:
    """The "file" field of every non-empty line (None where absent), in `read_items`' order."""
    return [
        json.loads(line).get("file")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def evaluate(
    model: RiskModel,
    items: Sequence[tuple[str, list[str]]],
    labels: Sequence[str | None],
    files: Sequence[str | None] | None = None,
) -> tuple[list[dict[str, object]], dict[str, object]]:
    assessments = assess_conversations(model, items)
    predictions: list[dict[str, object]] = [
        {
            "risk_level": a.risk_level.value,
            "scores": {level: round(a.probabilities.get(level, 0.0), 6) for level in RISK_LEVELS},
        }
        for a in assessments
    ]
    labelled = [i for i, label in enumerate(labels) if label is not None]
    y_true = np.array([RISK_LEVELS.index(str(labels[i])) for i in labelled], dtype=np.int64)
    y_pred = np.array([assessments[i].risk_level.rank for i in labelled], dtype=np.int64)
    summary = report(y_true, y_pred)
    summary["raised_by_rules"] = sum(a.raised_by is not None for a in assessments)
    item_files = files if files is not None else [None] * len(items)
    names = [slices.names(items[i][0], items[i][1], item_files[i]) for i in labelled]
    summary["slices"] = slices.by_slice(y_true, y_pred, names)
    summary["content_free_above_low"] = slices.content_free_above_low(
        items, [a.risk_level.rank for a in assessments]
    )
    return predictions, summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, required=True)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--model", choices=("default", "huggingface", "cascade"), default=None)
    parser.add_argument("--head-path", type=pathlib.Path, default=None)
    parser.add_argument("--model-path", type=pathlib.Path, default=None)
    parser.add_argument("--label-map", type=json.loads, default=None)
    parser.add_argument("--thresholds", type=json.loads, default=None)
    parser.add_argument("--second-head-path", type=pathlib.Path, default=None)
    parser.add_argument("--second-thresholds", type=json.loads, default=None)
    parser.add_argument("--gate", type=float, default=None, help="cascade: MiniLM's P(high+)")
    parser.add_argument(
        "--no-languages",
        dest="languages",
        action="store_false",
        help="cascade: mpnet re-reads every language (no multilingual-e5 reader)",
    )
    parser.add_argument("--languages-head-path", type=pathlib.Path, default=None)
    parser.add_argument("--languages-thresholds", type=json.loads, default=None)
    parser.add_argument("--model-cache", type=pathlib.Path, default=pathlib.Path(".cache/models"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    items, labels = read_items(args.data)
    # A model folder alone means a Hugging Face model; otherwise the default head.
    kind: ModelKind = args.model or ("huggingface" if args.model_path else "default")
    model = load_risk_model(
        kind,
        model_path=args.model_path,
        head_path=args.head_path,
        label_map=args.label_map,
        thresholds=args.thresholds,
        device=args.device,
        threads=args.threads,
        second_head_path=args.second_head_path,
        second_thresholds=args.second_thresholds,
        gate=args.gate,
        model_cache_dir=args.model_cache,
        languages=args.languages,
        languages_head_path=args.languages_head_path,
        languages_thresholds=args.languages_thresholds,
    )
    predictions, summary = evaluate(model, items, labels, read_files(args.data))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as fh:
        for row in predictions:
            fh.write(json.dumps(row) + "\n")
    summary["model_id"], summary["model_version"] = model.model_id, model.model_version
    if isinstance(model, CascadeModel):
        # How much of the input the second reader had to read again: its share of the cost.
        summary["cascade_reread_fraction"] = round(model.reread_fraction, 4)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
