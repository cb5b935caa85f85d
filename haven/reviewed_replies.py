"""Reviewed replies: what the person reads at medium, high and critical risk, never sampled from a
model (unless an operator trusts a large one there: `haven.safety_policy.uses_fixed_reply`).

Each level has several variants so that a conversation that stays at risk does not get the same
words every turn. A variant is a list of sentences, streamed one by one, with the locale's lines
filled in. The high and critical variants were checked against `models/safety/LABELLING.md` and
safe-messaging practice; every variant, medium included, is held by tests to name the line, to
pass the strict output screen (no method, means or place), and to do what its level asks:

- medium (passive thoughts of death, hopelessness; no panel goes before it): it validates, asks
  gently how the person is right now, and says that support exists right now, with the line.
- high: it stays with the person, asks directly about safety now, names the line, and gives one
  safety-planning step (someone to be with them, distance from means).
- critical: as high, with the emergency number.

A message about someone else (a third-person report) gets variants that point to help for that
person (emergency services at high) and still ask after the writer.

`choose` is deterministic for a seed (the session and the message), and skips any variant the
conversation's recent replies already used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from haven.protocol import EmergencyResources
from haven.risk import RiskLevel
from haven.safety_policy import (
    CRISIS_SUPPORT,
    GENTLE_CHECK_IN,
    SAFETY_CHECK_IN,
    text_line_in_sentence,
)


class Concern(StrEnum):
    """Whose safety the message is about."""

    SELF = "self"
    SOMEONE_ELSE = "someone_else"


# Placeholders: {hotline}, {text_line} ("text HOME to 741741"), {emergency}.
_MEDIUM_SELF: tuple[tuple[str, ...], ...] = (
    (
        "Thank you for telling me. It sounds like things feel really heavy right now, and "
        "that's a lot to carry on your own. ",
        "How are you doing at this moment? ",
        "If it ever feels like too much, support is there right now: you can call {hotline} any "
        "time, or {text_line}.",
    ),
    (
        "I'm really glad you said this; thoughts like these are hard to hold alone. ",
        "Can you tell me a little about how you're feeling right now? ",
        "You can also talk with someone trained to listen, right now or any hour, by calling "
        "{hotline}, or you can {text_line}.",
    ),
    (
        "That sounds exhausting and painful, and I'm here with you. ",
        "How are you feeling right now, as we talk? ",
        "You don't have to wait until things get worse to reach out: {hotline} is there right "
        "now, day or night, or you can {text_line}.",
    ),
    (
        "It makes sense that you'd feel worn down when everything seems this hard. ",
        "I'd like to understand: how are you holding up right now? ",
        "If you'd like to talk to someone this minute, you can call {hotline} any time, or "
        "{text_line}.",
    ),
    (
        "I hear how much pain you're in, and I'm glad you're talking to me. ",
        "How are things for you right now? ",
        "Whenever you need it, support is there right now: call {hotline}, or {text_line}.",
    ),
    (
        "Feeling this way can be really lonely, and I'm glad you reached out. ",
        "How are you doing right now? ",
        "If it would help to talk with someone right now, you can call {hotline} or "
        "{text_line}, at any hour.",
    ),
)
_MEDIUM_OTHER: tuple[tuple[str, ...], ...] = (
    (
        "It sounds like you care about them a lot, and it's a heavy thing to be trusted with. ",
        "How are you doing with it right now? ",
        "You can call {hotline} yourself, right now or any time, to talk through how to support "
        "them, or {text_line}.",
    ),
    (
        "That's a lot to hold, and it's good that you're taking it seriously. ",
        "The people at {hotline} can help you think through what to say to them, right now or "
        "any time, or you can {text_line}. ",
        "How are you feeling about it right now?",
    ),
    (
        "I'm glad you told me; you don't have to figure this out alone. ",
        "If you ever think they're in immediate danger, call {emergency}; otherwise {hotline} is "
        "there right now, for them and for you, or you can {text_line}. ",
        "How are you holding up?",
    ),
)
_HIGH_SELF: tuple[tuple[str, ...], ...] = (
    (
        "Thank you for telling me; it sounds like you're carrying an enormous amount of pain, "
        "and I'm staying right here with you. ",
        "You can call {hotline} at any hour to talk with someone trained to help, or {text_line}. ",
        "If you can, ask someone you trust to come and be with you for now. ",
        "Can I ask you directly: are you safe right now?",
    ),
    (
        "I'm really glad you told me, and I'm not going anywhere. ",
        "I want to ask you plainly, because it matters: are you safe right now? ",
        "Someone is there right now at {hotline} to listen and help you through this, "
        "or you can {text_line}. ",
        "While we talk, it could help to put some distance between yourself and anything you "
        "could use to hurt yourself.",
    ),
    (
        "What you're going through sounds so painful, and it took courage to say it. ",
        "You deserve support right now, not someday: you can call {hotline} or {text_line} to "
        "reach someone trained to help, any time. ",
        "It can help to have someone you trust with you right now, even just on the phone. ",
        "Are you somewhere safe at the moment?",
    ),
    (
        "I hear you, and I'm glad you're still talking with me. ",
        "Are you thinking of acting on these thoughts right now, or are you safe for the moment? ",
        "Whatever your answer, you can call {hotline} any time and talk to someone who wants to "
        "help, or {text_line}. ",
        "If anything you could use to hurt yourself is close by, moving it away or asking "
        "someone to keep it for you can make the next few hours safer.",
    ),
)
_HIGH_OTHER: tuple[tuple[str, ...], ...] = (
    (
        "That sounds really frightening, and I'm glad you reached out. ",
        "If you think they might be in danger right now, call {emergency} straight away. ",
        "You can also call {hotline} yourself for guidance on how to help them. ",
        "Do you know whether they're safe right now, and are you okay?",
    ),
    (
        "I'm sorry you're facing this; it's a lot to carry. ",
        "If they may be in immediate danger, please call {emergency} now. ",
        "The people at {hotline} can also talk you through how to support them, any time. ",
        "Can someone be with them right now to keep them safe, and is someone with you too?",
    ),
    (
        "You're doing the right thing by taking this seriously. ",
        "If you believe their life is at risk right now, call {emergency}, and if you can, "
        "stay with them or stay in contact until help arrives. ",
        "You can call {hotline} too, for yourself or for advice on what to say. ",
        "Are they safe at this moment, as far as you know?",
    ),
)
_CRITICAL: tuple[tuple[str, ...], ...] = (
    (
        "I'm really glad you told me, and I'm worried about your safety right now. ",
        "You don't have to go through this alone. ",
        "Please call {hotline} to reach someone who can help right now, or {text_line}. ",
        "If you are in immediate danger, call {emergency}. ",
        "If you can, move away from anything you could use to hurt yourself, and let someone "
        "near you know. ",
        "I'm here with you. Are you somewhere safe at the moment?",
    ),
    (
        "I'm so glad you're talking to me, and I'm worried about you right now. ",
        "Please call {emergency} now, or ask someone near you to call for you. ",
        "You can also call {hotline} or {text_line} to talk with someone this minute. ",
        "If you can, put distance between yourself and anything you could use to hurt yourself, "
        "and go to where other people are. ",
        "I'm staying with you. Are you safe right now?",
    ),
    (
        "What you're feeling right now matters, and so does your life. ",
        "Please reach out for help this minute: call {emergency} if you are in immediate "
        "danger, or call {hotline}, or {text_line}. ",
        "If there is someone nearby, let them know what is happening and ask them to stay "
        "with you. ",
        "I'm here. Can you tell me whether you are safe at this moment?",
    ),
)


@dataclass(frozen=True)
class ReviewedReply:
    intent: str
    sentences: list[str]

    @property
    def text(self) -> str:
        return "".join(self.sentences).strip()


def line_fields(resources: EmergencyResources) -> dict[str, str]:
    """How the locale's lines read inside a sentence."""
    return {
        "hotline": resources.crisis_hotline,
        "text_line": text_line_in_sentence(resources),
        "emergency": resources.emergency_number or "your local emergency number",
    }


def variants(
    level: RiskLevel, resources: EmergencyResources, concern: Concern = Concern.SELF
) -> list[ReviewedReply]:
    """Every reviewed reply for `level` (medium, high or critical), filled in for the locale."""
    if level is RiskLevel.CRITICAL:
        intent, table = CRISIS_SUPPORT, _CRITICAL
    elif level is RiskLevel.HIGH:
        intent = SAFETY_CHECK_IN
        table = _HIGH_OTHER if concern is Concern.SOMEONE_ELSE else _HIGH_SELF
    elif level is RiskLevel.MEDIUM:
        intent = GENTLE_CHECK_IN
        table = _MEDIUM_OTHER if concern is Concern.SOMEONE_ELSE else _MEDIUM_SELF
    else:
        raise ValueError(f"no reviewed reply at risk level {level.value!r}: it is generated")
    fields = line_fields(resources)
    return [ReviewedReply(intent, [s.format(**fields) for s in variant]) for variant in table]


def pick(options: Sequence[str], seed: str, recent: Sequence[str] = ()) -> str:
    """One of `options`, the same for the same seed. Those found in `recent` texts (oldest
    first) are skipped; when every option was used, the oldest uses are forgotten first, so the
    newest reply is never repeated while there is another option."""
    fresh: list[str] = []
    for start in range(len(recent) + 1):
        fresh = [o for o in options if not any(o.strip() in text for text in recent[start:])]
        if fresh:
            break
    digest = hashlib.sha256(seed.encode()).digest()
    return fresh[int.from_bytes(digest[:8], "big") % len(fresh)]


def choose(
    level: RiskLevel,
    resources: EmergencyResources,
    *,
    seed: str,
    recent: Sequence[str] = (),
    concern: Concern = Concern.SELF,
) -> ReviewedReply:
    """The reviewed reply for this turn: `seed` names the turn (session and message ids),
    `recent` holds the conversation's recent replies, whose variants are not repeated."""
    by_text = {v.text: v for v in variants(level, resources, concern)}
    return by_text[pick(list(by_text), seed, recent)]
