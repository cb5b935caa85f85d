"""The conversation as a whole: how the person's own messages have moved, turn by turn.

The model reads the new message alone and joined after the person's last few messages. Joined
text is more intense than any of its parts, so on its own it drifts: four messages of ordinary
work stress, read together, came out high. The trajectory is the sequence of the person's own
readings (each earlier message read alone, `TRAJECTORY_MESSAGES` of them, then the new one), and
it decides what the joined reading may do:

- **steady and mild** (every reading `low` or below): the joined reading may not put the turn
  above the conversation's own highest reading when the new message is no higher than the
  earlier ones (a steady conversation does not climb by repetition), nor above `medium` when the
  new message rose;
- **anything at `medium` or above** in the trajectory: the joined reading counts in full, as before.

The other way round, the joined reading bounds the message's own reading when the conversation
is mild: if every earlier message was read at `low` or below and the message read after them is
`none`, the message alone may not go above `low`. "i am dying. my mouth is on fire" after "my
sister dared me to eat a ghost pepper" read critical alone and none in its conversation. Not when
the message itself names a method or means (`_HARM`): read after ordinary messages, the joined
text can dilute a plain statement ("Ich hab einen Strick gekauft und heute Nacht mache ich
Schluss" after two messages about a football match read critical alone and none joined), and
such a message keeps its own reading. The rules still read the message afterwards, so an
explicit statement they know raises the turn whatever its context.

Two things the trajectory adds on top, both only raising:

- **carry**: a content-free reply ("ok", "k", "🙂") right after a message that the rule layer
  puts at `high` or above keeps that level ("ok" after a described plan is still that plan). The
  model's own reading of the earlier message is not enough: it misreads ("I've got sumatriptan
  in the cupboard" came out critical), and "ok thanks" after it must not inherit that; the joined
  reading still counts as before;
- **a plan completed across messages**: when the earlier messages already named a method or
  means (`rules.HARM_TOPIC`) and were read at `medium` or above, a new message that commits to a
  time ("I'll do it on Friday when she's at work") is `critical`, reason `plan_completed`: intent,
  means and timing, said in three messages instead of one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from haven.risk import RiskLevel
from models.safety import content, rules

TRAJECTORY_MESSAGES = 6
CARRY_MESSAGES = 1

_DAYS = (
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|lunes|martes|miercoles|jueves|"
    r"viernes|sabado|domingo|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|montag|"
    r"dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|segunda|terca|quarta|quinta|sexta"
)
TIMING = re.compile(
    rf"\b(?:tonight|today|tomorrow|this (?:weekend|evening|afternoon|morning|week)|{_DAYS}|"
    r"at (?:\d{1,2}(?::\d\d)?|midnight|dawn|sunrise)|in (?:a|an|one|two|three|\d+) "
    r"(?:minutes?|hours?|days?)|when (?:every ?one|they|she|he|my \w+)(?:'s| is| are)? "
    r"(?:asleep|gone|away|out|at work)|"
    r"esta noche|hoy|manana|este fin de semana|ce soir|cette nuit|demain|ce week-end|heute|"
    r"morgen|dieses wochenende|hoje|amanha|neste fim de semana)\b"
)
COMMIT = re.compile(
    r"\b(?:i'?ll|i will|i'?m (?:going to|gonna|doing it)|i am (?:going to|doing it)|gonna|"
    r"i'?ve (?:decided|picked|chosen)|i have (?:decided|picked|chosen)|that'?s when|"
    r"(?:is|will be) (?:the day|the night|when)|it'?s happening|"
    r"voy a|lo hare|lo voy a hacer|je vais|je le ferai|ich werde|ich mache es|vou|vou fazer)\b"
)
_HARM = re.compile(
    rf"{rules.HARM_TOPIC}|pastillas|pildoras|soga|cuerda|puente|pistola|matarme|suicid|cachets|"
    r"pilules|corde|\bpont\b|me tuer|tabletten|seil|strick|brucke|waffe|umbringen|comprimidos|"
    r"remedios|corda|ponte|\barma\b|me matar"
)


@dataclass(frozen=True)
class Trajectory:
    """The person's own readings: the earlier messages oldest first, then the new one."""

    earlier: tuple[RiskLevel, ...]
    current: RiskLevel

    @property
    def levels(self) -> tuple[RiskLevel, ...]:
        return (*self.earlier, self.current)

    @property
    def peak(self) -> RiskLevel:
        return max(self.earlier, key=lambda level: level.rank, default=RiskLevel.NONE)

    def joined_ceiling(self) -> RiskLevel | None:
        """The highest level the joined reading may give the turn; None: no bound."""
        if not self.earlier:
            return None  # no trajectory known: the joined reading counts as it always did
        top = max(self.levels, key=lambda level: level.rank)
        if top.rank > RiskLevel.LOW.rank:
            return None
        # A new message no more worrying than the earlier ones adds nothing the joined text can
        # build on; one that rose may take the turn to medium (the reply names the line).
        return top if self.current.rank <= self.peak.rank else RiskLevel.MEDIUM

    def alone_ceiling(self, joined: RiskLevel, text: str) -> RiskLevel | None:
        """The highest level the message's own reading may give the turn; None: no bound."""
        if not self.earlier or self.peak.rank > RiskLevel.LOW.rank:
            return None
        if _HARM.search(content.fold(text)):
            # A method or means in the message itself: its own reading is not overruled by a
            # joined text that may have diluted it.
            return None
        # Only when the conversation reads the message as wholly ordinary: a veiled disclosure
        # after small talk still reads as distress in context, and then keeps its own reading.
        return RiskLevel.LOW if joined is RiskLevel.NONE else None

    def carried(self, text: str, context: Sequence[str]) -> RiskLevel | None:
        """The level a content-free reply keeps from the explicit statement just before it."""
        if not self.earlier or not context or not content.content_free(text):
            return None
        hits = [rules.check_text(c) for c in context[-CARRY_MESSAGES:]]
        levels = [h.level for h in hits if h is not None]
        level = max(levels, key=lambda lv: lv.rank, default=RiskLevel.NONE)
        return level if level.at_least(RiskLevel.HIGH) else None

    def completes_plan(self, text: str, context: Sequence[str]) -> bool:
        """Timing and commitment now, after means or method and concern in earlier messages."""
        if not self.peak.at_least(RiskLevel.MEDIUM):
            return False
        earlier = context[-len(self.earlier) :] if self.earlier else []
        if not any(_HARM.search(content.fold(c)) for c in earlier):
            return False
        now = content.fold(text)
        return bool(TIMING.search(now) and COMMIT.search(now))
