"""Score the planner on a JSONL file of conversations and write its predictions.

    python -m models.intent.evaluate --data FILE.jsonl --out PREDICTIONS.jsonl

Input lines: `{"context": [{"role": "user"|"assistant", "text": ...}, ...], "intent": ...}`, the
conversation so far and (optionally) the intent of the assistant's next turn. Output lines, in
input order: `{"intent": ..., "scores": {intent: probability, ...}}`. The last line printed is
one JSON object with `n`, `accuracy`, `macro_f1` and `per_intent`, over the labelled lines.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from dataclasses import dataclass
from typing import Any

from models.intent.metrics import Metrics, summarise
from models.intent.planner import INTENTS, IntentPlanner

CHUNK = 256  # conversations per plan_batch call: bounds memory, keeps progress visible


@dataclass(frozen=True)
class _Turn:
    role: str
    text: str


def parse_line(raw: str, number: int) -> tuple[list[_Turn], str | None]:
    """(context, label or None) of one input line; raises ValueError naming the line."""
    try:
        row: Any = json.loads(raw)
        turns = [_Turn(str(t["role"]), str(t["text"])) for t in row["context"]]
        label = row.get("intent")
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"line {number}: not a valid record ({error})") from None
    if label is not None and label not in INTENTS:
        raise ValueError(f"line {number}: unknown intent {label!r}")
    return turns, label


def evaluate(planner: IntentPlanner, data: pathlib.Path, out: pathlib.Path) -> Metrics:
    """Write predictions for every line of `data` to `out`; metrics over the labelled lines."""
    rows = [
        parse_line(raw, number)
        for number, raw in enumerate(data.read_text(encoding="utf-8").splitlines(), start=1)
        if raw.strip()
    ]
    true: list[str] = []
    pred: list[str] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            for (_, label), prediction in zip(
                chunk, planner.plan_batch([context for context, _ in chunk]), strict=True
            ):
                line = {"intent": prediction.intent, "scores": prediction.scores}
                fh.write(json.dumps(line) + "\n")
                if label is not None:
                    true.append(label)
                    pred.append(prediction.intent)
            print(f"{min(start + CHUNK, len(rows))}/{len(rows)}", file=sys.stderr, flush=True)
    return summarise(true, pred)


def main(argv: list[str] | None = None) -> Metrics:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=pathlib.Path, required=True)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--weights", type=pathlib.Path, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    planner = IntentPlanner.load(args.weights, threads=args.threads)
    metrics = evaluate(planner, args.data, args.out)
    print(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    main()
