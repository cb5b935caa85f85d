"""The written corpus: its fixed, stratified test split and how its items become training texts."""

from __future__ import annotations

import json
import math
import pathlib
from collections import Counter

from models.safety import corpus


def _write(path: pathlib.Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _folder(tmp_path: pathlib.Path) -> pathlib.Path:
    _write(
        tmp_path / "singles.jsonl",
        [{"text": f"message {n}", "level": "low", "reason": "r"} for n in range(12)]
        + [{"text": f"plan {n}", "level": "high", "reason": "r"} for n in range(6)],
    )
    _write(
        tmp_path / "talks_3.jsonl",
        [
            {"messages": [f"hi {n}", "I have a plan", "ok"], "level": "critical", "reason": "r"}
            for n in range(5)
        ],
    )
    return tmp_path


def test_every_file_and_level_gives_a_fifth_to_the_test_split(tmp_path: pathlib.Path) -> None:
    items = corpus.load_written(_folder(tmp_path))

    tests = Counter((i.file, i.level) for i in items if i.split == "test")
    groups = Counter((i.file, i.level) for i in items)
    assert tests == {group: math.ceil(0.2 * n) for group, n in groups.items()}
    assert [i.split for i in corpus.load_written(tmp_path)] == [i.split for i in items]


def test_several_messages_are_a_conversation_in_any_file(tmp_path: pathlib.Path) -> None:
    items = corpus.load_written(_folder(tmp_path))
    talk = next(i for i in items if i.file == "talks_3")

    assert talk.is_conversation and talk.text == "ok"
    assert talk.context == [talk.messages[0], "I have a plan"]
    assert not any(i.is_conversation for i in items if i.file == "singles")

    examples = {e.group: e for e in corpus.to_examples(items)}
    assert examples[talk.key].source == "conversations"
    assert examples[talk.key].text.endswith("I have a plan\nok")
    assert examples["message 0"].source == "written"
    assert examples["message 0"].text == "message 0"


def test_a_text_written_twice_is_kept_once(tmp_path: pathlib.Path) -> None:
    _write(tmp_path / "a.jsonl", [{"text": "same words", "level": "none", "reason": "r"}])
    _write(tmp_path / "b.jsonl", [{"text": "same words", "level": "none", "reason": "r"}])

    assert [i.text for i in corpus.load_written(tmp_path)] == ["same words"]
