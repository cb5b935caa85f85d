"""How one message is assessed in its conversation: shared by the deployment and the evaluation,
so the numbers the evaluation prints are the numbers the service gets.

The model reads the new message alone and joined after the person's last few messages; the
higher level wins, so that "ok" after a described plan is still taken seriously. Two bounds keep
out-of-distribution text from reading as danger: a content-free message (`content.py`) is never
above `low` on its own reading, and a message in a language the model was not trained on
(`language.py`) is read as `medium` whatever the model says. The rule layer then reads the
message and its context and can only raise the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from haven.risk import Assessment, RiskLevel
from models.safety import content, language, rules

# How many earlier messages of the person are read together with the new one.
CONTEXT_MESSAGES = 3


class RiskModel(Protocol):
    """What the deployment and the evaluation need from any classifier."""

    model_id: str
    model_version: str

    def assess(self, texts: Sequence[str]) -> list[Assessment]:
        """One assessment per text, in the order given."""
        ...


def context_text(text: str, context: Sequence[str]) -> str | None:
    """The new message read after the person's last few messages; None without context."""
    recent = [c for c in context[-CONTEXT_MESSAGES:] if c.strip()]
    return "\n".join([*recent, text]) if recent else None


# Ceiling of a content-free message's own reading; the level that replaces the model's readings
# of a message in a language it was not trained on (the reply names the crisis line; no panel).
CONTENT_FREE_CEILING = RiskLevel.LOW
UNTRAINED_LANGUAGE_LEVEL = RiskLevel.MEDIUM


def cap(assessment: Assessment, ceiling: RiskLevel) -> Assessment:
    """`assessment` with its level lowered to `ceiling` if above it; probabilities untouched."""
    if assessment.risk_level.rank <= ceiling.rank:
        return assessment
    return assessment.model_copy(update={"risk_level": ceiling})


def at_level(assessment: Assessment, level: RiskLevel) -> Assessment:
    """`assessment` set to `level`; the model's probabilities stay for the audit trail."""
    return assessment.model_copy(update={"risk_level": level})


def combine(
    text: str, context: Sequence[str], alone: Assessment, joined: Assessment | None
) -> Assessment:
    """The higher of the two model readings, bounded for out-of-distribution text, then raised
    by the rules where they fire."""
    if content.content_free(text):
        alone = cap(alone, CONTENT_FREE_CEILING)
    elif language.route(text) is language.Route.UNTRAINED:
        # Guesswork both ways in a language the model never saw: neither trusted (language.py).
        alone = at_level(alone, UNTRAINED_LANGUAGE_LEVEL)
        joined = None
    best = alone
    if joined is not None and joined.risk_level.rank > alone.risk_level.rank:
        best = joined
    hit = rules.check(text, context[-CONTEXT_MESSAGES:])
    if hit is None or hit.level.rank <= best.risk_level.rank:
        return best
    return best.model_copy(update={"risk_level": hit.level, "raised_by": hit.reason})


def assess_conversations(
    model: RiskModel, items: Sequence[tuple[str, Sequence[str]]], chunk: int = 256
) -> list[Assessment]:
    """Assess many (message, earlier messages) pairs exactly as the deployment does, batched."""
    out: list[Assessment] = []
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        texts = [text for text, _ in part]
        joined = [context_text(text, context) for text, context in part]
        extra = [j for j in joined if j is not None]
        results = model.assess(texts + extra)
        alone, rest = results[: len(texts)], iter(results[len(texts) :])
        for (text, context), a, j in zip(part, alone, joined, strict=True):
            out.append(combine(text, context, a, next(rest) if j is not None else None))
    return out
