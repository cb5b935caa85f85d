"""`python -m models.llm.evaluate`: its input and output lines and the ESConv export (interface,
on a tiny random model; not the quality figures)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.llm import evaluate
from models.llm.evaluate_data import EvalCase, read_cases
from models.llm.evaluate_metrics import distinct_n, invents_person
from tests.unit.tiny_llm import write_tiny_model

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
SUMMARY_KEYS = {
    "n", "gold_ppl", "median_words", "distinct_1", "distinct_2", "relevance",
    "invented_person_rate", "screen_replaced_rate",
}  # fmt: skip
CASES: list[dict[str, object]] = [
    {"context": [{"role": "user", "text": "I can't sleep before my exams."}],
     "reply": "That sounds stressful. What keeps you awake?", "intent": "question"},
    {"context": [{"role": "user", "text": "hi"}, {"role": "assistant", "text": "Hello!"},
                 {"role": "user", "text": "I feel lonely since I moved."}]},
    {"context": [{"role": "user", "text": "third"}], "reply": "not read with --limit 2"},
]  # fmt: skip


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def run(tiny_model: Path, data: Path, out: Path, *extra: str) -> list[dict[str, object]]:
    args = ["--data", str(data), "--out", str(out), "--model-path", str(tiny_model), *extra]
    assert evaluate.main(["--threads", "1", *args]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_one_line_per_context_then_the_summary(tiny_model: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", CASES)

    lines = run(tiny_model, data, tmp_path / "out.jsonl", "--limit", "2", "--seed", "3")

    rows, summary = lines[:-1], lines[-1]
    assert len(rows) == 2
    for row in rows:
        assert {"reply", "intent", "words", "gold_ppl"} <= set(row)
        assert row["words"] == len(str(row["reply"]).split())
    assert rows[0]["intent"] == "question"
    assert isinstance(rows[0]["gold_ppl"], float) and rows[0]["gold_ppl"] > 1
    assert rows[1]["gold_ppl"] is None  # no gold reply given
    assert rows[1]["intent"] == evaluate.DEFAULT_INTENT
    assert SUMMARY_KEYS <= set(summary)
    assert summary["n"] == 2
    assert summary["gold_ppl"] == rows[0]["gold_ppl"]


def test_same_seed_gives_the_same_replies(tiny_model: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", CASES[:1])

    first = run(tiny_model, data, tmp_path / "a.jsonl", "--seed", "5")
    second = run(tiny_model, data, tmp_path / "b.jsonl", "--seed", "5")

    assert first[0]["reply"] == second[0]["reply"]


def test_each_row_lists_its_candidates_and_sends_one_of_them_up_to_any_later_cut(
    tiny_model: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", CASES[:2])

    lines = run(tiny_model, data, tmp_path / "out.jsonl", "--candidates", "3")
    single = run(tiny_model, data, tmp_path / "one.jsonl", "--candidates", "1")

    rows, summary = lines[:-1], lines[-1]
    for row in rows:
        candidates = row["candidates"]
        assert isinstance(candidates, list) and len(candidates) == 3
        assert any(str(text).startswith(str(row["reply"])) for text in candidates)
        assert row["later_cut"] is None or isinstance(row["later_cut"], str)
    assert summary["candidates"] == 3
    assert summary["later_cut"] == sum(row["later_cut"] is not None for row in rows)
    first = summary["first_sample"]
    assert isinstance(first, dict) and {"relevance", "invented_person_rate"} <= set(first)
    assert all("candidates" not in row for row in single[:-1])
    assert "first_sample" not in single[-1] and single[-1]["candidates"] == 1


def test_at_medium_risk_a_reply_that_agrees_counts_as_screened() -> None:
    class Encoder:
        def encode(self, texts: list[str]) -> np.ndarray:
            return np.ones((len(texts), 2))

    cases = [EvalCase.model_validate(CASES[1])]
    rows = [{"reply": "I think that is a great idea.", "intent": "validate", "gold_ppl": None}]

    none = evaluate.summarise(cases, [dict(r) for r in rows], Encoder())
    medium = evaluate.summarise(cases, [dict(r) for r in rows], Encoder(), "medium")

    assert none["screen_replaced_rate"] == 0.0 and medium["screen_replaced_rate"] == 1.0


def test_a_context_not_ending_with_the_person_is_refused(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", [{"context": [{"role": "assistant", "text": "x"}]}])

    with pytest.raises(ValueError, match=r"in\.jsonl:1"):
        read_cases(data)


def test_esconv_export_writes_valid_input_lines(tmp_path: Path) -> None:
    folder = tmp_path / "esconv"
    folder.mkdir()
    (folder / "strategy.json").write_text(json.dumps(["[Question]", "[Self-disclosure]"]))
    dialog = [
        {"speaker": "usr", "text": "I lost my job."},
        {"speaker": "sys", "text": "I'm sorry. How are you coping?", "strategy": "Question"},
        {"speaker": "usr", "text": "Badly."},
        {"speaker": "sys", "text": "I lost mine once.", "strategy": "Self-disclosure"},
    ]
    (folder / "valid.json").write_text(json.dumps({"dialog": dialog}) + "\n")
    out = tmp_path / "valid.jsonl"

    assert evaluate.main(["--export-esconv", "valid", "--esconv-dir", str(folder),
                          "--out", str(out)]) == 0  # fmt: skip

    cases = read_cases(out)
    assert cases == [
        EvalCase.model_validate(
            {"context": [{"role": "user", "text": "I lost my job."}],
             "reply": "I'm sorry. How are you coping?", "intent": "question"}
        )
    ]  # fmt: skip


def test_a_third_person_counts_as_invented_only_when_the_context_has_none() -> None:
    assert invents_person("Did he say that to you?", ["I had a bad day at work."])
    assert not invents_person("Did he say that to you?", ["My boss shouted at me, he was cruel."])
    assert not invents_person("That sounds exhausting.", ["I had a bad day."])


def test_distinct_n_counts_unique_ngrams_over_all_replies() -> None:
    assert distinct_n(["a b", "a b"], 1) == 0.5
    assert distinct_n(["a b c", "a b d"], 2) == 0.75
