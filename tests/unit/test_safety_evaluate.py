"""The evaluation CLI: fixed input and output formats, and the summary as its last line."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from haven.risk import RISK_LEVELS
from models.safety import evaluate
from models.safety.metrics import report

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "safety" / "evaluate.jsonl"


def test_cli_writes_one_prediction_per_line_and_a_summary(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nested" / "predictions.jsonl"
    assert evaluate.main(["--data", str(FIXTURE), "--out", str(out), "--threads", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])

    predictions = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    inputs = [line for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(predictions) == len(inputs)
    for row in predictions:
        assert set(row) == {"risk_level", "scores"}
        assert row["risk_level"] in RISK_LEVELS
        assert list(row["scores"]) == list(RISK_LEVELS)
        assert sum(row["scores"].values()) == pytest.approx(1.0, abs=1e-4)

    # The unlabelled last line is predicted but not counted.
    assert summary["n"] == len(inputs) - 1
    for key in (
        "macro_f1",
        "quadratic_weighted_kappa",
        "critical_miss_rate",
        "over_escalation_rate",
        "per_level",
        "confusion",
    ):
        assert key in summary
    assert len(summary["confusion"]) == 5 and all(len(r) == 5 for r in summary["confusion"])
    assert sum(map(sum, summary["confusion"])) == summary["n"]
    assert set(summary["per_level"]) == set(RISK_LEVELS)
    assert set(summary["per_level"]["high"]) == {"precision", "recall", "f1", "support"}
    # Per-slice figures are extra keys; every labelled item is in one form and one length slice.
    slices = summary["slices"]
    assert slices["form:single"]["n"] == 6  # one conversation alone is below the slice minimum
    assert "form:conversation" not in slices
    assert slices["route:english"]["n"] == summary["n"]
    assert set(slices["form:single"]) == {
        "n",
        "qwk",
        "critical_miss_rate",
        "over_escalation_rate",
    }
    assert summary["content_free_above_low"] == 0
    # "the rope is ready" is explicit: the rule layer makes it critical whatever the model says.
    assert predictions[6]["risk_level"] == "critical"
    assert predictions[1]["risk_level"] in ("none", "low")


def test_slices_name_language_form_length_and_file() -> None:
    from models.safety import slices

    assert slices.names("ok", [], None) == [
        "language:und",
        "route:english",
        "form:single",
        "length:short",
    ]
    long_spanish = "Me siento muy sola desde que me mudé de ciudad. " * 30
    assert slices.names(long_spanish, ["hola"], "multilingual") == [
        "language:es",
        "route:trained",
        "form:conversation",
        "length:long",
        "file:multilingual",
    ]
    import numpy as np

    y = np.array([0, 0, 1, 1, 3, 4])
    pred = np.array([3, 0, 1, 1, 3, 2])
    names = [["a"], ["a"], ["a"], ["a"], ["a", "b"], ["a"]]
    table = slices.by_slice(y, pred, names)
    assert set(table) == {"a"}  # "b" has fewer items than the minimum
    assert table["a"]["n"] == 6
    assert table["a"]["over_escalation_rate"] == 0.25
    assert table["a"]["critical_miss_rate"] == 0.5
    items = [("ok", []), ("ok", ["the rope is ready"]), ("socket", [])]
    assert slices.content_free_above_low(items, [3, 4, 1]) == 1


def test_bad_lines_are_reported(tmp_path: pathlib.Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"text": "hi", "risk_level": "severe"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="unknown level"):
        evaluate.read_items(data)
    data.write_text('{"note": "no text"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="text"):
        evaluate.read_items(data)


def test_report_rates() -> None:
    import numpy as np

    y = np.array([0, 1, 2, 3, 4, 4])
    pred = np.array([3, 1, 2, 2, 4, 3])
    r: dict[str, Any] = report(y, pred)
    assert r["critical_miss_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert r["over_escalation_rate"] == 0.5
    assert r["confusion"][3] == [0, 0, 1, 0, 0]
    assert r["per_level"]["critical"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": 0.6667,
        "support": 2,
    }
