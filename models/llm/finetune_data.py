"""ESConv supporter turns as training examples for the reply model, rendered as Haven serves them.

One example per supporter turn (consecutive supporter utterances): the context is the
conversation before it, the intent is its opening strategy mapped to Haven's intents
(`models.intent.esconv`, the same mapping the intent planner learns), and the target is the
turn's text. The prompt is rendered by `models.llm.prompt.build_messages`, the function that
builds serving prompts, so the tuned model sees in training exactly the layout it is served.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.intent.esconv import (
    DROPPED_STRATEGIES,
    SPEAKER_TO_ROLE,
    check_strategy_list,
    intent_for_strategy,
    load_dialogues,
)
from models.llm.prompt import ChatTurn, build_messages, render_prompt_ids

# ESConv has no risk labels; its seekers are in everyday to persistent distress.
TRAINING_RISK_LEVEL = "none"
# A supporter's turn, not an essay (issue: 1-4 sentences); longer turns are left out so the model
# learns the shape rather than a cut-off version of it.
MAX_REPLY_SENTENCES = 4
MAX_REPLY_TOKENS = 80
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
IGNORE_INDEX = -100


@dataclass(frozen=True)
class SupportTurn:
    dialogue: int
    context: tuple[ChatTurn, ...]
    intent: str
    reply: str


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX on the prompt; the reply and its end-of-turn token count


def sentence_count(text: str) -> int:
    return max(1, len(_SENTENCE_END.findall(text.strip())))


def support_turns(dialog: Sequence[dict[str, Any]], dialogue: int) -> Iterator[SupportTurn]:
    """Merged turns of one dialogue; each supporter turn after a seeker turn is an example."""
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for utterance in dialog:
        role = SPEAKER_TO_ROLE[utterance["speaker"]]
        if turns and turns[-1][0] == role:
            turns[-1][1].append(utterance)
        else:
            turns.append((role, [utterance]))
    history: list[ChatTurn] = []
    for role, utterances in turns:
        text = _join(u["text"] for u in utterances)
        if role == "assistant" and history and history[-1].role == "user":
            intent = intent_for_strategy(utterances[0]["strategy"])
            # The reply stops before any self-disclosure: Haven must never claim a human
            # experience. Turns that open with one are left out entirely.
            kept = []
            for u in utterances:
                if u.get("strategy", "").strip("[]") in DROPPED_STRATEGIES:
                    break
                kept.append(u["text"])
            if intent is not None and kept:
                yield SupportTurn(dialogue, tuple(history), intent, _join(kept))
        history.append(ChatTurn("user" if role == "user" else "assistant", text))


def _join(texts: Iterator[str] | Sequence[str]) -> str:
    return " ".join(t.strip() for t in texts if t.strip())


def load_turns(data_dir: Path, split: str) -> list[SupportTurn]:
    """Supporter turns of `split` ("train" or "valid") of the ESConv folder `data_dir`."""
    check_strategy_list(data_dir / "strategy.json")
    turns: list[SupportTurn] = []
    for d, dialog in enumerate(load_dialogues(data_dir / f"{split}.json")):
        turns.extend(support_turns(dialog, d))
    return turns


def encode(turn: SupportTurn, tokenizer: Any, max_tokens: int) -> Encoded | None:
    """Prompt + reply ids within `max_tokens`; None for a reply too long to be a turn's shape."""
    if sentence_count(turn.reply) > MAX_REPLY_SENTENCES:
        return None
    end_of_turn: int = tokenizer.eos_token_id
    reply: list[int] = tokenizer(turn.reply, add_special_tokens=False)["input_ids"]
    reply = [*reply, end_of_turn]
    if len(reply) > MAX_REPLY_TOKENS:
        return None
    # The prompt gives up its oldest turns first, exactly as at serving time.
    try:
        messages = build_messages(
            turn.context,
            intent=turn.intent,
            risk_level=TRAINING_RISK_LEVEL,
            tokenizer=tokenizer,
            max_prompt_tokens=max_tokens - len(reply),
        )
    except ValueError:
        return None  # not even the instructions fit beside this reply
    if messages[-2]["content"] != turn.context[-1].text:
        # A reply to half a message teaches replying to things nobody said.
        return None
    prompt = render_prompt_ids(messages, tokenizer)
    return Encoded([*prompt, *reply], [IGNORE_INDEX] * len(prompt) + reply)


def encode_sample(
    turns: Sequence[SupportTurn], tokenizer: Any, *, count: int, max_tokens: int, seed: int
) -> list[Encoded]:
    """`count` encoded examples drawn from `turns` in a seeded order (fewer if too few fit)."""
    order = list(range(len(turns)))
    random.Random(seed).shuffle(order)
    examples: list[Encoded] = []
    for index in order:
        if len(examples) >= count:
            break
        encoded = encode(turns[index], tokenizer, max_tokens)
        if encoded is not None:
            examples.append(encoded)
    return examples
