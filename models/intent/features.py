"""The planner's feature recipe: what of a conversation the head sees, as one vector.

A conversation is first folded into turns (runs of consecutive messages from one role, joined),
because ESConv and chat clients both split one turn over several messages. The vector holds the
sentence embedding of the most recent user and assistant turns (and the ones before them), a flag
per embedding slot saying whether that turn exists, and a few cheap scalars that the embeddings
do not carry well: how far into the conversation we are, its length, and question marks.
Training and serving both go through `featurise`, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from models.safety.encoder import EMBEDDING_DIM

ROLES = ("user", "assistant")
# Slot name -> (role, how many turns of that role back from the end).
SLOT_SPEC: dict[str, tuple[str, int]] = {
    "user_last": ("user", 0),
    "assistant_last": ("assistant", 0),
    "user_prev": ("user", 1),
    "assistant_prev": ("assistant", 1),
}
# Thresholds on "assistant turns so far", one indicator each: support chats move from exploring
# to comforting to suggesting, and that shift is neither linear nor monotone in the turn count.
POSITION_THRESHOLDS = (1, 2, 3, 4, 6, 9, 13)
SCALAR_NAMES = (
    *(f"assistant_turns>={edge}" for edge in POSITION_THRESHOLDS),
    "empty",
    "user_last_has_question_mark",
    "assistant_last_has_question_mark",
    "user_last_log_words",
    "user_last_messages",
)
# Far beyond what 128 tokens cover; trimming first keeps a pasted essay from costing a full
# tokenisation pass before truncation throws it away.
MAX_CHARS = 2_000


class ContextTurn(Protocol):
    @property
    def role(self) -> str: ...

    @property
    def text(self) -> str: ...


@dataclass(frozen=True)
class Recipe:
    slots: tuple[str, ...] = tuple(SLOT_SPEC)
    max_tokens: int = 128

    @property
    def dim(self) -> int:
        return len(self.slots) * (EMBEDDING_DIM + 1) + len(SCALAR_NAMES)

    def to_json(self) -> str:
        return json.dumps(
            {"slots": list(self.slots), "max_tokens": self.max_tokens, "scalars": SCALAR_NAMES}
        )

    @classmethod
    def from_json(cls, raw: str) -> Recipe:
        data = json.loads(raw)
        if tuple(data["scalars"]) != SCALAR_NAMES:
            raise ValueError("weights were trained with a different scalar feature list")
        unknown = set(data["slots"]) - set(SLOT_SPEC)
        if unknown:
            raise ValueError(f"unknown feature slots {sorted(unknown)}")
        return cls(slots=tuple(data["slots"]), max_tokens=int(data["max_tokens"]))


def normalise(text: str) -> str:
    # Lone surrogates (possible from JSON "\ud800" escapes) cannot be encoded for the tokenizer.
    text = str(text)[:MAX_CHARS].encode("utf-8", "replace").decode("utf-8")
    return " ".join(text.split())


def fold_turns(context: Sequence[ContextTurn]) -> list[tuple[str, str, int]]:
    """(role, joined text, message count) per turn; empty messages are skipped."""
    turns: list[tuple[str, str, int]] = []
    for message in context:
        if message.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {message.role!r}")
        text = normalise(message.text)
        if not text:
            continue
        if turns and turns[-1][0] == message.role:
            role, joined, count = turns[-1]
            turns[-1] = (role, f"{joined} {text}", count + 1)
        else:
            turns.append((message.role, text, 1))
    return turns


def slot_texts(turns: Sequence[tuple[str, str, int]], recipe: Recipe) -> list[str | None]:
    by_role = {role: [t for t in reversed(turns) if t[0] == role] for role in ROLES}
    texts: list[str | None] = []
    for slot in recipe.slots:
        role, back = SLOT_SPEC[slot]
        texts.append(by_role[role][back][1] if back < len(by_role[role]) else None)
    return texts


def scalar_features(turns: Sequence[tuple[str, str, int]]) -> list[float]:
    assistant_turns = sum(1 for t in turns if t[0] == "assistant")
    last = {role: next((t for t in reversed(turns) if t[0] == role), None) for role in ROLES}
    user, assistant = last["user"], last["assistant"]
    return [
        *(float(assistant_turns >= edge) for edge in POSITION_THRESHOLDS),
        float(not turns),
        float(user is not None and "?" in user[1]),
        float(assistant is not None and "?" in assistant[1]),
        math.log1p(len(user[1].split())) / 4.0 if user else 0.0,
        min(user[2], 3) / 3.0 if user else 0.0,
    ]


def featurise(
    contexts: Sequence[Sequence[ContextTurn]],
    recipe: Recipe,
    embed: Callable[[list[str]], np.ndarray],
) -> np.ndarray:
    """Feature matrix [len(contexts), recipe.dim]; `embed` is called once, on the unique texts."""
    folded = [fold_turns(context) for context in contexts]
    slots = [slot_texts(turns, recipe) for turns in folded]
    unique = sorted({text for row in slots for text in row if text is not None})
    vectors = embed(unique) if unique else np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    index = {text: i for i, text in enumerate(unique)}
    width = len(recipe.slots) * EMBEDDING_DIM
    out = np.zeros((len(contexts), recipe.dim), dtype=np.float32)
    for row, (texts, turns) in enumerate(zip(slots, folded, strict=True)):
        for s, text in enumerate(texts):
            if text is not None:
                out[row, s * EMBEDDING_DIM : (s + 1) * EMBEDDING_DIM] = vectors[index[text]]
                out[row, width + s] = 1.0
        out[row, width + len(recipe.slots) :] = scalar_features(turns)
    return out
