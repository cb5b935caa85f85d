"""How one message is assessed in its conversation: shared by the deployment and the evaluation,
so the numbers the evaluation prints are the numbers the service gets.

The model reads the new message alone and joined after the person's last few messages; the
higher level wins, so that "ok" after a described plan is still taken seriously. Two bounds keep
out-of-distribution text from reading as danger: a content-free message (`content.py`) is never
above `low` on its own reading, and a message in a language the model was not trained on
(`language.py`) is read as `medium` whatever the model says. The rule layer then reads the
message and its context and can only raise the result, and the conversation's trajectory (the
person's earlier messages each read alone, `trajectory.py`) bounds the joined reading of a steady
mild conversation, carries a plan over a content-free reply and completes a plan told across
several messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from haven.risk import Assessment, RiskLevel
from models.safety import content, language, rules
from models.safety.trajectory import TRAJECTORY_MESSAGES, Trajectory

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


def own_reading(text: str, alone: Assessment) -> Assessment:
    """A message's reading on its own, bounded for out-of-distribution text."""
    if content.content_free(text):
        return cap(alone, CONTENT_FREE_CEILING)
    if language.route(text) is language.Route.UNTRAINED:
        # Guesswork both ways in a language the model never saw: not trusted (language.py).
        return at_level(alone, UNTRAINED_LANGUAGE_LEVEL)
    return alone


def earlier_texts(context: Sequence[str]) -> list[str]:
    """The earlier messages whose own readings make the trajectory, oldest first."""
    return [c for c in context[-TRAJECTORY_MESSAGES:] if c.strip()]


def combine(
    text: str,
    context: Sequence[str],
    alone: Assessment,
    joined: Assessment | None,
    earlier: Sequence[Assessment] = (),
) -> Assessment:
    """The turn's level: the message's own reading, the joined one as far as the trajectory lets
    it count, then raised by the trajectory and the rules where they fire. `earlier`: the own
    readings (model, before these bounds) of `earlier_texts(context)`, in order; without them the
    joined reading counts in full."""
    alone = own_reading(text, alone)
    if language.route(text) is language.Route.UNTRAINED:
        joined = None
    texts = earlier_texts(context)
    own = [own_reading(t, a).risk_level for t, a in zip(texts, earlier, strict=False)]
    path = Trajectory(tuple(own), alone.risk_level)
    best = alone
    if joined is not None:
        ceiling = path.joined_ceiling()
        if ceiling is not None:
            joined = cap(joined, ceiling)
        bound = path.alone_ceiling(joined.risk_level, text)
        if bound is not None:
            alone = best = cap(alone, bound)
        if joined.risk_level.rank > alone.risk_level.rank:
            best = joined
    carried = path.carried(text, texts)
    if carried is not None and carried.rank > best.risk_level.rank:
        best = best.model_copy(update={"risk_level": carried, "raised_by": "conversation_context"})
    if path.completes_plan(text, texts) and best.risk_level is not RiskLevel.CRITICAL:
        return best.model_copy(
            update={"risk_level": RiskLevel.CRITICAL, "raised_by": "plan_completed"}
        )
    hit = rules.check(text, context[-CONTEXT_MESSAGES:])
    if hit is None or hit.level.rank <= best.risk_level.rank:
        return best
    return best.model_copy(update={"risk_level": hit.level, "raised_by": hit.reason})


def assess_conversations(
    model: RiskModel, items: Sequence[tuple[str, Sequence[str]]], chunk: int = 256
) -> list[Assessment]:
    """Assess many (message, earlier messages) pairs exactly as the deployment does, batched:
    every distinct text of a chunk (messages, joined texts, earlier messages) is read once."""
    out: list[Assessment] = []
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        needed: dict[str, int] = {}
        for text, context in part:
            for t in (text, context_text(text, context), *earlier_texts(context)):
                if t is not None:
                    needed.setdefault(t, len(needed))
        results = model.assess(list(needed))
        for text, context in part:
            joined = context_text(text, context)
            earlier = [results[needed[t]] for t in earlier_texts(context)]
            out.append(
                combine(
                    text,
                    context,
                    results[needed[text]],
                    results[needed[joined]] if joined is not None else None,
                    earlier,
                )
            )
    return out
