"""The system prompt and the chat messages for one assistant turn, fitted to a token budget."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from haven.risk import RiskLevel

logger = logging.getLogger(__name__)

Role = Literal["user", "assistant"]

BASE_PROMPT = (
    "You are Haven, a supportive listening companion in a mental-health support chat. "
    "Reply warmly and briefly, in 2 to 4 sentences, speaking directly to the person. "
    "You are not a human and not a therapist: never claim human experiences or feelings of "
    "your own, and never diagnose or name a condition. "
    "When someone has been struggling a lot or for a long time, gently encourage them to reach "
    "out to a mental-health professional or someone they trust."
)

INTENT_INSTRUCTIONS: dict[str, str] = {
    "validate": (
        "In this reply, acknowledge their feelings and let them know those feelings make sense."
    ),
    "reflect": (
        "In this reply, reflect back in your own words what they said and how they seem to feel."
    ),
    "question": "In this reply, ask one gentle, open question that helps them say more.",
    "reassure": (
        "In this reply, offer calm reassurance without dismissing their feelings or promising "
        "outcomes."
    ),
    "suggest": (
        "In this reply, offer one small, practical coping idea they could try, as an option, "
        "not an order."
    ),
    "inform": (
        "In this reply, share brief, accurate general information in plain words, without "
        "medical advice."
    ),
    "other": "In this reply, respond naturally and kindly to what they said.",
    "safety_check_in": (
        "In this reply, gently ask how safe they feel right now and whether they are having "
        "thoughts of hurting themselves."
    ),
    "crisis_support": (
        "In this reply, focus on their safety: stay calm and caring and help them reach crisis "
        "support right now."
    ),
}
INTENTS: tuple[str, ...] = tuple(INTENT_INSTRUCTIONS)

MEDIUM_RISK_NOTE = (
    "They may be going through a hard time: check in gently on how they are doing and remind "
    "them that support is available."
)
# Placed last in the system prompt because small models weigh the end of the prompt most.
CRISIS_NOTE = (
    "Their safety comes first. Tell them gently that they do not have to face this alone, and "
    "encourage them to call or text {hotline} now or text HOME to {text_line}; if they are in "
    "immediate danger, they should call emergency services. Never discuss ways of self-harm."
)


class Turn(Protocol):
    """One earlier message of the conversation (`ChatTurn` here, or `haven.backends.ChatTurn`)."""

    @property
    def role(self) -> str: ...

    @property
    def text(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: Role
    text: str


def system_prompt(
    *,
    intent: str,
    risk_level: str,
    crisis_hotline: str = "988",
    crisis_text: str = "741741",
) -> str:
    """The system prompt for one turn; raises ValueError for a risk level that does not exist."""
    # An unknown risk level means the turn was not assessed: fail loudly rather than guess.
    level = RiskLevel(risk_level)
    instruction = INTENT_INSTRUCTIONS.get(intent)
    if instruction is None:
        # The planner may learn intents before this table does; a kind reply is still right.
        logger.warning("unknown intent %r; using 'other'", intent)
        instruction = INTENT_INSTRUCTIONS["other"]
    parts = [BASE_PROMPT, instruction]
    if level.at_least(RiskLevel.HIGH):
        parts.append(CRISIS_NOTE.format(hotline=crisis_hotline, text_line=crisis_text))
    elif level is RiskLevel.MEDIUM:
        parts.append(MEDIUM_RISK_NOTE)
    return " ".join(parts)


def strip_special_tokens(text: str, tokenizer: Any) -> str:
    """Remove control-token strings (`<|im_start|>`...) that a person typed.

    The chat template is rendered to text and tokenised as a whole, so a typed `<|im_end|>` would
    otherwise become a real turn boundary and let a message pose as the system prompt.
    """
    specials = _special_token_strings(tokenizer)
    # Removing one occurrence can join two halves into a new one; repeat until stable.
    while any(token in text for token in specials):
        for token in specials:
            text = text.replace(token, "")
    return text


def _special_token_strings(tokenizer: Any) -> tuple[str, ...]:
    tokens = set(getattr(tokenizer, "all_special_tokens", ()))
    for added in getattr(tokenizer, "added_tokens_decoder", {}).values():
        if getattr(added, "special", False):
            tokens.add(str(added))
    return tuple(sorted((t for t in tokens if t), key=len, reverse=True))


def render_prompt_ids(messages: Sequence[dict[str, str]], tokenizer: Any) -> list[int]:
    """Token ids of `messages` in the model's chat template, ending with the assistant's cue."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    # The template already holds every special token; letting the tokenizer add a BOS again
    # would shift the prompt away from what the model was trained on.
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids


def build_messages(
    history: Sequence[Turn],
    *,
    intent: str,
    risk_level: str,
    tokenizer: Any,
    max_prompt_tokens: int,
    crisis_hotline: str = "988",
    crisis_text: str = "741741",
) -> list[dict[str, str]]:
    """System prompt plus as much recent history as fits `max_prompt_tokens`.

    `history` is oldest first and ends with the user's newest message. Oldest turns are dropped
    first; the newest user turn is always kept, cut to its end if it alone is too long.
    """
    if not history or history[-1].role != "user":
        raise ValueError("history must end with the user's newest message")
    system = {
        "role": "system",
        "content": system_prompt(
            intent=intent,
            risk_level=risk_level,
            crisis_hotline=crisis_hotline,
            crisis_text=crisis_text,
        ),
    }
    turns = [
        {"role": turn.role, "content": strip_special_tokens(turn.text, tokenizer)}
        for turn in history
    ]

    def fits(dropped: int) -> bool:
        return len(render_prompt_ids([system, *turns[dropped:]], tokenizer)) <= max_prompt_tokens

    # Fewer turns never render to more tokens, so the smallest number to drop is found by
    # bisection: a long history costs a few renders, not one per turn.
    low, high = 0, len(turns) - 1
    if fits(high):
        while low < high:
            middle = (low + high) // 2
            if fits(middle):
                high = middle
            else:
                low = middle + 1
        return [system, *turns[low:]]

    newest = _truncate_to_fit(system, turns[-1]["content"], tokenizer, max_prompt_tokens)
    return [system, {"role": "user", "content": newest}]


def _truncate_to_fit(
    system: dict[str, str], text: str, tokenizer: Any, max_prompt_tokens: int
) -> str:
    overhead = len(render_prompt_ids([system, {"role": "user", "content": ""}], tokenizer))
    room = max_prompt_tokens - overhead
    if room <= 0:
        raise ValueError(
            f"max_prompt_tokens={max_prompt_tokens} leaves no room after the system prompt "
            f"({overhead} tokens)"
        )
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    # The end of a long message is kept: that is where people tend to say what they need now.
    # Re-tokenising decoded text can merge differently, so shrink until the render fits.
    keep = min(room, len(ids))
    while keep > 0:
        tail = tokenizer.decode(ids[-keep:], skip_special_tokens=True).lstrip("\ufffd")
        message = {"role": "user", "content": tail}
        if len(render_prompt_ids([system, message], tokenizer)) <= max_prompt_tokens:
            logger.info("newest message cut from %d to %d tokens to fit the prompt", len(ids), keep)
            return tail
        keep -= max(1, keep // 20)
    return ""
