"""The system prompt and the chat messages for one reply, fitted to a token budget.

The system prompt tells the model how to carry out the turn's intent (chosen by the intent
planner, or imposed by the safety policy) and adds the safety instructions the risk calls for.
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

BASE_PROMPT = (
    "You are Haven, a supportive listening companion in a mental-health support chat. "
    "Reply warmly and briefly, in 2 to 4 sentences, speaking directly to the person. "
    "You are not a human and not a therapist: never claim human experiences or feelings of "
    "your own, and never diagnose or name a condition. "
    "When someone has been struggling a lot or for a long time, gently encourage them to reach "
    "out to a mental-health professional or someone they trust."
)
# Safe-messaging practice for suicide and self-harm, in every prompt: a topic can surface at any
# risk level, and the classifier can under-read a message.
SAFE_MESSAGING = (
    "If self-harm or suicide comes up, take it seriously and never describe methods, means, "
    "amounts or places, never present it as a solution or a way out, and never judge, argue or "
    "lecture. Do not promise secrecy or outcomes."
)

SAFETY_CHECK_IN = "safety_check_in"
INTENT_INSTRUCTIONS: dict[str, str] = {
    "validate": (
        "In this reply, validate: name the feeling you hear and tell them it makes sense given "
        "what they are going through. Do not rush to fix it or give advice."
    ),
    "reflect": (
        "In this reply, reflect: say back in your own words the heart of what they said and how "
        "they seem to feel, so they know they were heard. Add no advice and no new topic."
    ),
    "question": (
        "In this reply, ask one gentle, open question (what or how, not why) that helps them "
        "say more. Ask only that one question."
    ),
    "reassure": (
        "In this reply, reassure: calmly tell them their reaction is understandable and that "
        "they are not alone, without dismissing the feeling or promising how things will turn "
        "out."
    ),
    "suggest": (
        "In this reply, offer one small coping idea they could try now, such as slow breathing, "
        "a short walk, writing their thoughts down or talking to someone they trust, as an "
        "option, not an order."
    ),
    "inform": (
        "In this reply, share brief, accurate, general information in plain words. Give no "
        "medical or medication advice; for specifics, suggest a professional."
    ),
    "other": (
        "In this reply, respond naturally and kindly to what they said, and gently leave room "
        "for them to share how they are doing."
    ),
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
    intent = resolve_intent(intent)
    safety = INTENT_INSTRUCTIONS[SAFETY_CHECK_IN].format(
        hotline=crisis_hotline, text_line=crisis_text
    )
    parts = [BASE_PROMPT, SAFE_MESSAGING]
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
    `tokenizer` None (a remote model): lengths are estimated from characters.
    """
    if not history or history[-1].role != "user":
        raise ValueError("history must end with the user's newest message")
    measure = measure_for(tokenizer)
    system = {
        "role": "system",
        "content": system_prompt(
            intent=intent,
            risk_level=risk_level,
            crisis_hotline=crisis_hotline,
            crisis_text=crisis_text,
        ),
    }
    turns = [{"role": turn.role, "content": measure.clean(turn.text)} for turn in history]

    def fits(dropped: int) -> bool:
        return measure.count([system, *turns[dropped:]]) <= max_prompt_tokens

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

    newest = _truncate_to_fit(system, turns[-1]["content"], measure, max_prompt_tokens)
    return [system, {"role": "user", "content": newest}]


def _truncate_to_fit(
    system: dict[str, str], text: str, measure: PromptMeasure, max_prompt_tokens: int
) -> str:
    overhead = measure.count([system, {"role": "user", "content": ""}])
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
        if measure.count([system, {"role": "user", "content": tail}]) <= max_prompt_tokens:
            logger.info("newest message cut from %d to %d tokens to fit the prompt", length, keep)
            return tail
        keep -= max(1, keep // 20)
    return ""
