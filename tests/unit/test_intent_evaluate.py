"""Intent planner evaluation: the fixed JSONL command line and the ESConv export feeding it."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from models.intent import evaluate, export_esconv
from models.intent.planner import INTENTS, IntentPlanner

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "intent"
TINY = FIXTURES / "tiny.jsonl"
STRATEGIES = [
    "[Question]",
    "[Restatement or Paraphrasing]",
    "[Reflection of feelings]",
    "[Self-disclosure]",
    "[Affirmation and Reassurance]",
    "[Providing Suggestions]",
    "[Information]",
    "[Others]",
]


@pytest.fixture(scope="module")
def planner() -> IntentPlanner:
    return IntentPlanner.load(threads=1)


def _rows(path: pathlib.Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_evaluate_cli_writes_one_line_per_input_in_order_and_prints_metrics_last(
    planner: IntentPlanner, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "predictions.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "models.intent.evaluate", "--data", str(TINY), "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    inputs, outputs = _rows(TINY), _rows(out)
    assert len(outputs) == len(inputs)
    for row, written in zip(inputs, outputs, strict=True):
        context, _ = evaluate.parse_line(json.dumps(row), 1)
        expected = planner.plan(context)
        assert written["intent"] == expected.intent
        scores = written["scores"]
        assert isinstance(scores, dict) and tuple(scores) == INTENTS
        assert sum(scores.values()) == pytest.approx(1.0, abs=1e-6)

    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    labelled = [row for row in inputs if "intent" in row]
    assert metrics["n"] == len(labelled) == len(inputs) - 1
    assert set(metrics) == {"n", "accuracy", "macro_f1", "per_intent"}
    assert set(metrics["per_intent"]) == set(INTENTS)
    assert set(metrics["per_intent"]["question"]) == {"precision", "recall", "f1", "support"}
    hits = sum(
        row["intent"] == o["intent"]
        for row, o in zip(inputs, outputs, strict=True)
        if "intent" in row
    )
    assert metrics["accuracy"] == pytest.approx(hits / len(labelled), abs=1e-4)


def test_evaluate_without_labels_reports_no_accuracy(
    planner: IntentPlanner, tmp_path: pathlib.Path
) -> None:
    data = tmp_path / "unlabelled.jsonl"
    data.write_text('{"context": []}\n{"context": [{"role": "user", "text": "hi"}]}\n')
    metrics = evaluate.evaluate(planner, data, tmp_path / "out.jsonl")
    assert metrics["n"] == 0 and metrics["accuracy"] is None
    assert len(_rows(tmp_path / "out.jsonl")) == 2


def test_evaluate_rejects_an_intent_outside_the_seven(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="line 3: unknown intent 'self-disclosure'"):
        evaluate.parse_line('{"context": [], "intent": "self-disclosure"}', 3)
    with pytest.raises(ValueError, match="line 1: not a valid record"):
        evaluate.parse_line('{"turns": []}', 1)


def test_esconv_export_feeds_evaluate_and_leaves_out_self_disclosure(
    planner: IntentPlanner, tmp_path: pathlib.Path
) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "esconv").mkdir(parents=True)
    (data_dir / "esconv" / "strategy.json").write_text(json.dumps(STRATEGIES))
    (data_dir / "esconv" / "valid.json").write_bytes((FIXTURES / "esconv-tiny.json").read_bytes())
    exported = tmp_path / "valid.jsonl"
    assert export_esconv.export(data_dir, "valid", exported) == 5
    rows = _rows(exported)
    assert [row["intent"] for row in rows] == ["question", "reflect", "reassure", "other", "inform"]
    metrics = evaluate.evaluate(planner, exported, tmp_path / "predictions.jsonl")
    assert metrics["n"] == 5
