"""The chat messages for one reply, laid out for prefix caching and fitted to a token budget.

Layout: one stable system message (the same for every turn of every person), the conversation,
then a trailing system message with what varies per turn: the intent to carry out (chosen by the
intent planner, or imposed by the safety policy) and the safety instructions the risk calls for.
Keeping the varying part after the newest message means a conversation's next prompt repeats the
previous prompt's tokens up to the person's last message, which a prefix cache can reuse. The
tuned reply model (`models.llm.finetune`) is trained on prompts rendered by this same code.
Critical risk never reaches a model: that turn gets a fixed, reviewed reply instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from haven.risk import RiskLevel
from models.llm.prompt_fit import PromptMeasure, measure_for
from models.llm.prompt_fit import render_prompt_ids as render_prompt_ids
from models.llm.prompt_fit import strip_special_tokens as strip_special_tokens

logger = logging.getLogger(__name__)

Role = Literal["user", "assistant"]

# Kept short: it is read on every turn and takes room from the conversation in the tuned
# model's 256-token training examples.
BASE_PROMPT = (
    "You are Haven, a supportive listener in a mental-health chat. Reply warmly in 1 to 4 short "
    "sentences about what the person said. You are not a human or a therapist: never claim "
    "experiences of your own, never diagnose. Suggest a professional or someone they trust when "
    "they have struggled for long."
)
# Safe-messaging practice for suicide and self-harm, in every prompt: a topic can surface at any
# risk level, and the classifier can under-read a message.
SAFE_MESSAGING = (
    "If self-harm or suicide comes up, take it seriously; never describe methods, means, amounts "
    "or places, never present it as a solution."
)

SAFETY_CHECK_IN = "safety_check_in"
INTENT_INSTRUCTIONS: dict[str, str] = {
    "validate": "Now validate: name the feeling you hear and say it makes sense. No advice.",
    "reflect": "Now reflect: say back in your own words what they said and how they feel.",
    "question": "Now ask one gentle, open question (what or how) that helps them say more.",
    "reassure": "Now reassure: their reaction is understandable and they are not alone.",
    "suggest": "Now offer one small coping idea they could try, as an option, not an order.",
    "inform": "Now share brief, general information in plain words; no medical advice.",
    "other": "Now respond naturally and kindly to what they said.",
    # Filled with the crisis lines of the deployment (`Settings.crisis_hotline/crisis_text`).
    SAFETY_CHECK_IN: (
        "Their safety comes first in this reply. Calmly ask whether they are safe right now. "
        "Take what they said seriously: never minimise it or argue with it. Tell them they do "
        "not have to face this alone and encourage them to reach out now: call or text "
        "{hotline}, or text HOME to {text_line}; if they are in immediate danger, they should "
        "call emergency services. Encourage them to contact someone they trust as well. Never "
        "mention methods, means or places of self-harm, even if asked."
    ),
}
INTENTS: tuple[str, ...] = tuple(INTENT_INSTRUCTIONS)
# Intent names the safety policy used before `safety_check_in` covered high risk.
INTENT_ALIASES = {"crisis_support": SAFETY_CHECK_IN}

MEDIUM_RISK_NOTE = (
    "They may be going through a hard time: end your reply by gently checking in on how they "
    "are coping, and remind them that support is there if they need it."
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


def resolve_intent(intent: str) -> str:
    """The intent the prompt carries out for `intent`; unknown intents become `other`."""
    intent = INTENT_ALIASES.get(intent, intent)
    if intent not in INTENT_INSTRUCTIONS:
        # The planner may learn intents before this table does; a kind reply is still right.
        logger.warning("unknown intent %r; using 'other'", intent)
        return "other"
    return intent


def stable_system_prompt() -> str:
    """The system message that opens every prompt; never varies, so caches can share it."""
    return f"{BASE_PROMPT} {SAFE_MESSAGING}"


def turn_instruction(
    *,
    intent: str,
    risk_level: str,
    crisis_hotline: str = "988",
    crisis_text: str = "741741",
) -> str:
    """What this turn must do, read right before the reply; ValueError for an unknown risk level."""
    # An unknown risk level means the turn was not assessed: fail loudly rather than guess.
    level = RiskLevel(risk_level)
    intent = resolve_intent(intent)
    safety = INTENT_INSTRUCTIONS[SAFETY_CHECK_IN].format(
        hotline=crisis_hotline, text_line=crisis_text
    )
    parts: list[str] = []
    if intent == SAFETY_CHECK_IN or level.at_least(RiskLevel.HIGH):
        # Whatever the intent, high risk gets the safety instructions, placed last because
        # small models weigh the end of the prompt most.
        if intent != SAFETY_CHECK_IN:
            parts.append(INTENT_INSTRUCTIONS[intent])
        parts.append(safety)
    else:
        parts.append(INTENT_INSTRUCTIONS[intent])
        if level is RiskLevel.MEDIUM:
            parts.append(MEDIUM_RISK_NOTE)
    return " ".join(parts)


def system_prompt(
    *,
    intent: str,
    risk_level: str,
    crisis_hotline: str = "988",
    crisis_text: str = "741741",
) -> str:
    """Everything the model is told for one turn, as one text (stable part, then the turn's)."""
    instruction = turn_instruction(
        intent=intent, risk_level=risk_level, crisis_hotline=crisis_hotline, crisis_text=crisis_text
    )
    return f"{stable_system_prompt()} {instruction}"


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
    """Stable system message, as much recent history as fits, then the turn's instruction.

    `history` is oldest first and ends with the user's newest message. Oldest turns are dropped
    first; the newest user turn is always kept, cut to its end if it alone is too long.
    `tokenizer` None (a remote model): lengths are estimated from characters.
    """
    if not history or history[-1].role != "user":
        raise ValueError("history must end with the user's newest message")
    measure = measure_for(tokenizer)
    system = {"role": "system", "content": stable_system_prompt()}
    instruction = {
        "role": "system",
        "content": turn_instruction(
            intent=intent,
            risk_level=risk_level,
            crisis_hotline=crisis_hotline,
            crisis_text=crisis_text,
        ),
    }
    turns = [{"role": turn.role, "content": measure.clean(turn.text)} for turn in history]

    def fits(dropped: int) -> bool:
        return measure.count([system, *turns[dropped:], instruction]) <= max_prompt_tokens

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
        return [system, *turns[low:], instruction]

    frame = (system, instruction)
    newest = _truncate_to_fit(frame, turns[-1]["content"], measure, max_prompt_tokens)
    return [system, {"role": "user", "content": newest}, instruction]


def _truncate_to_fit(
    frame: tuple[dict[str, str], dict[str, str]],
    text: str,
    measure: PromptMeasure,
    max_prompt_tokens: int,
) -> str:
    system, instruction = frame

    def render(content: str) -> list[dict[str, str]]:
        return [system, {"role": "user", "content": content}, instruction]

    overhead = measure.count(render(""))
    room = max_prompt_tokens - overhead
    if room <= 0:
        raise ValueError(
            f"max_prompt_tokens={max_prompt_tokens} leaves no room after the system prompt "
            f"({overhead} tokens)"
        )
    length = measure.length(text)
    # The end of a long message is kept: that is where people tend to say what they need now.
    # Re-tokenising cut text can merge differently, so shrink until the render fits.
    keep = min(room, length)
    while keep > 0:
        tail = measure.tail(text, keep)
        if measure.count(render(tail)) <= max_prompt_tokens:
            logger.info("newest message cut from %d to %d tokens to fit the prompt", length, keep)
            return tail
        keep -= max(1, keep // 20)
    return ""
