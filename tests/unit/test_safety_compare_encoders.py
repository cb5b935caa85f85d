"""The encoder comparison's own logic: thresholds and the table."""

from __future__ import annotations

import numpy as np

from models.safety import compare_encoders as ce
from models.safety.calibrate import Scored
from models.safety.datasets import Example


def _scored(p_high: float, label: int) -> Scored:
    # P(level) for none, low, medium, high, critical: P(>= high) is p_high.
    probs = np.array([1.0 - p_high, 0.0, 0.0, p_high, 0.0])
    return Scored(probs, None, 0, label)


def test_high_threshold_is_the_largest_that_keeps_misses_within_the_limit() -> None:
    items = [_scored(p, 3) for p in (0.9, 0.6, 0.3)] + [_scored(0.4, 0), _scored(0.1, 0)]
    base = {"low": 0.9, "medium": 0.9, "high": 0.9, "critical": 0.9}
    # Every severe item must reach high: the largest grid value at or below 0.3.
    assert ce.high_at_miss(items, base, 0.0) == {**base, "high": 0.3}
    # One of three may be missed: the largest value at or below 0.6.
    assert ce.high_at_miss(items, base, 0.34) == {**base, "high": 0.6}
    assert ce.high_at_miss([_scored(0.01, 3)], base, 0.0) is None


def test_subsample_keeps_every_written_text_and_the_same_public_groups() -> None:
    public = [Example(f"t{i}", 0, "twitter", f"g{i // 2}", "train") for i in range(400)]
    written = [Example("w", 3, "written", "w", "train")]
    first = ce.subsample(public + written, 0.5, seed=0)
    assert first == ce.subsample(public + written, 0.5, seed=0)
    assert written[0] in first
    assert 120 < len(first) - 1 < 280
    groups = {e.group for e in first}
    assert all(e in first for e in public if e.group in groups)  # whole groups
    assert ce.subsample(public, 1.0, seed=0) == public


def test_table_has_one_line_per_head_with_the_slices() -> None:
    row = ce.Row(
        head="enc mean",
        encoder="enc",
        dim=384,
        calibrated={
            "qwk": 0.7,
            "critical_miss_rate": 0.08,
            "over_escalation_rate": 0.15,
            "high": 0.35,
        },
        at_miss={
            "qwk": 0.65,
            "critical_miss_rate": 0.039,
            "over_escalation_rate": 0.25,
            "high": 0.2,
        },
        thresholds={"high": 0.2},
        slices={"route:english": {"n": 10, "over_escalation_rate": 0.125}},
        speed={"messages_per_s": 500.0, "load_s": 1.0, "weights_mb": 90.9},
    )
    missing = ce.Row("none reach", "enc", 384, row.calibrated, None, None, {})
    lines = ce.markdown_table([row, missing]).splitlines()
    assert len(lines) == 4
    assert lines[0].count("|") == lines[1].count("|") == lines[2].count("|") == lines[3].count("|")
    assert "| enc mean | 384 | 0.200 | 0.039 | 0.250 | 0.650 | 0.125 (n=10) |" in lines[2]
    assert "0.080 / 0.150 (0.35)" in lines[2] and "| 500.0 |" in lines[2]
    assert "| none reach | 384 | none | — | — | — |" in lines[3]


def test_speed_table_gives_each_round_the_median_and_the_ratio_to_the_first() -> None:
    def run(rate: float) -> dict[str, float]:
        return {"messages_per_s": rate, "load_s": 0.5, "weights_mb": 90.9}

    table = ce.speed_table({"a": [run(400.0), run(440.0)], "b": [run(60.0), run(70.0)]})
    lines = table.splitlines()
    assert lines[2] == "| a | 400.0, 440.0 | 420.0 | 1.00 | 0.50 | 90.9 |"
    assert lines[3] == "| b | 60.0, 70.0 | 65.0 | 0.15 | 0.50 | 90.9 |"
