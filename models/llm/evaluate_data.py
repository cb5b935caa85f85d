"""Input and output lines of `models.llm.evaluate`, and ESConv exported to its input format.

Input line: {"context": [{"role": "user"|"assistant", "text": ...}], "reply": optional gold,
"intent": optional}; the last context turn is the person's.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

from models.llm.finetune_data import load_turns
from models.llm.prompt import ChatTurn


class ContextTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str
    text: str

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str) -> str:
        if role not in ("user", "assistant"):
            raise ValueError(f"role must be 'user' or 'assistant', not {role!r}")
        return role


class EvalCase(BaseModel):
    model_config = ConfigDict(extra="ignore")

    context: list[ContextTurn]
    reply: str | None = None
    intent: str | None = None

    @field_validator("context")
    @classmethod
    def _ends_with_the_person(cls, context: list[ContextTurn]) -> list[ContextTurn]:
        if not context or context[-1].role != "user":
            raise ValueError("context must end with the person's (user) turn")
        return context

    def history(self) -> list[ChatTurn]:
        return [ChatTurn("user" if t.role == "user" else "assistant", t.text) for t in self.context]


def read_cases(path: Path, limit: int | None = None) -> list[EvalCase]:
    cases: list[EvalCase] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cases.append(EvalCase.model_validate_json(line))
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
        if limit is not None and len(cases) >= limit:
            break
    return cases


def esconv_cases(data_dir: Path, split: str, seed: int = 0) -> Iterator[dict[str, object]]:
    """ESConv supporter turns (as in fine-tuning) in a seeded order, so any first N are a sample
    spread over many dialogues."""
    turns = load_turns(data_dir, split)
    order = list(range(len(turns)))
    random.Random(seed).shuffle(order)
    for index in order:
        turn = turns[index]
        yield {
            "context": [{"role": t.role, "text": t.text} for t in turn.context],
            "reply": turn.reply,
            "intent": turn.intent,
        }


def write_lines(path: Path, rows: Iterator[dict[str, object]] | list[dict[str, object]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count
