"""ESConv supporter strategies turned into next-reply intent examples.

One example per supporter turn (a run of consecutive supporter utterances): the context is every
utterance said before the turn, the label is the strategy of the turn's first utterance. The first
utterance is what the reply opens with and what a planner decides before anything else is said;
later utterances of the same turn react to it, so they are not predictable from the context
alone. Turns that open with Self-disclosure are left out, because the service must never claim a
human experience; the utterances themselves stay in later contexts, since they were said.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

STRATEGY_TO_INTENT: dict[str, str] = {
    "Question": "question",
    "Restatement or Paraphrasing": "reflect",
    "Reflection of feelings": "validate",
    "Affirmation and Reassurance": "reassure",
    "Providing Suggestions": "suggest",
    "Information": "inform",
    "Others": "other",
}
DROPPED_STRATEGIES: frozenset[str] = frozenset({"Self-disclosure"})
SPEAKER_TO_ROLE = {"usr": "user", "sys": "assistant"}
SPLITS = ("train", "valid")


@dataclass(frozen=True)
class Turn:
    """One utterance; fits the planner's ContextTurn protocol."""

    role: str
    text: str


@dataclass(frozen=True)
class Example:
    dialogue: int  # position of the dialogue in its split file; the group for cross-validation
    context: tuple[Turn, ...]
    intent: str


def intent_for_strategy(strategy: str) -> str | None:
    """The intent a supporter strategy maps to, or None for strategies that are left out."""
    name = strategy.strip().strip("[]")
    if name in DROPPED_STRATEGIES:
        return None
    try:
        return STRATEGY_TO_INTENT[name]
    except KeyError:
        raise ValueError(f"unknown ESConv strategy {strategy!r}") from None


def check_strategy_list(path: pathlib.Path) -> None:
    """Fail loudly if strategy.json names a strategy the mapping does not cover."""
    names = [s.strip("[]") for s in json.loads(path.read_text(encoding="utf-8"))]
    unknown = set(names) - set(STRATEGY_TO_INTENT) - DROPPED_STRATEGIES
    if unknown:
        raise ValueError(f"strategies without an intent mapping: {sorted(unknown)}")


def load_dialogues(path: pathlib.Path) -> list[list[dict[str, Any]]]:
    """The `dialog` list of each record; the files hold one JSON object per line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["dialog"] for line in lines if line.strip()]


def examples_from_dialogue(dialog: Sequence[dict[str, Any]], dialogue: int) -> Iterator[Example]:
    utterances = [Turn(SPEAKER_TO_ROLE[u["speaker"]], u["text"]) for u in dialog]
    for i, utterance in enumerate(dialog):
        opens_turn = i == 0 or dialog[i - 1]["speaker"] != "sys"
        if utterance["speaker"] != "sys" or not opens_turn:
            continue
        intent = intent_for_strategy(utterance["strategy"])
        if intent is not None:
            yield Example(dialogue, tuple(utterances[:i]), intent)


def load_split(data_dir: pathlib.Path, split: str) -> list[Example]:
    """Examples of one ESConv split, in file order; `data_dir` is the shared data folder."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    folder = data_dir / "esconv"
    check_strategy_list(folder / "strategy.json")
    examples: list[Example] = []
    for d, dialog in enumerate(load_dialogues(folder / f"{split}.json")):
        examples.extend(examples_from_dialogue(dialog, d))
    return examples
