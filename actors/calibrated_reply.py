"""Reply streams shaped to the risk level (`haven.reply_elements`): the reviewed reply streamed
sentence by sentence, and a generated reply with what its level forbids taken out and what it
requires added.

At none and low a generated reply streams as it comes until a sentence reaches a word that can
begin a crisis resource ("call", "text", "hotline", a digit...): from that word to the end of
its sentence the text is held, then sent, or dropped when it names a crisis resource. A
sentence whose start was already sent is then finished by a reviewed clause instead. So the
first words go out with the first token, and no crisis line reaches a person at none or low.
At medium and above text streams as it comes, and the required sentences follow the model's
last words.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence

from haven.backends import ReplyStream
from haven.protocol import EmergencyResources
from haven.reply_elements import (
    LISTENING,
    carries_crisis_resources,
    high_elements,
    low_suggestion,
    medium_line,
    names_line,
    split_sentences,
    suggests_support,
)
from haven.risk import RiskLevel

# A run-on without a sentence end is screened and released once it is this long, so a reply
# with no punctuation still streams.
MAX_HELD_CHARS = 160
# Words that can begin the naming of a crisis resource (haven.reply_elements), and digits.
_OPENERS = (
    "call", "text", "contact", "reach", "ring", "dial", "phone", "hotline", "helpline",
    "lifeline", "line", "crisis", "suicide", "samaritans", "emergency", "a&e",
)  # fmt: skip
_OPENER = re.compile(r"\b(?:" + "|".join(map(re.escape, _OPENERS)) + r")|(?<!\w)\d", re.IGNORECASE)
# Finishes a sentence whose start was sent when its end named a crisis resource: after a word
# that leads into a verb ("you can", "try to") or a comma ("If it gets too much,"), a clause;
# after anything else, an ellipsis.
BRIDGE = "talk to someone you trust. "
_LEADS_INTO_VERB = re.compile(
    r"\b(?:can|could|might|may|should|would|will|to|always|also|just|please)\s*$", re.IGNORECASE
)


class ReviewedStream:
    """A reviewed reply, streamed sentence by sentence like a generated one."""

    def __init__(self, sentences: Sequence[str], intent: str) -> None:
        self._sentences = list(sentences)
        self._intent = intent

    @property
    def intent(self) -> str:
        return self._intent

    async def _pieces(self) -> AsyncIterator[str]:
        for sentence in self._sentences:
            yield sentence
            await asyncio.sleep(0)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._pieces()

    async def aclose(self) -> None:
        return None


class CalibratedStream:
    """A generated reply at `level`, screened and completed for it.

    `seed` names the turn (it picks among reviewed wordings); `recent` holds the conversation's
    recent replies, so a suggestion already made is not repeated.
    """

    def __init__(
        self,
        inner: ReplyStream,
        level: RiskLevel,
        resources: EmergencyResources,
        *,
        seed: str,
        recent: Sequence[str] = (),
    ) -> None:
        self._inner = inner
        self._level = level
        self._resources = resources
        self._seed = seed
        self._recent = list(recent)
        self.dropped = 0  # sentences taken out for naming crisis resources

    @property
    def intent(self) -> str:
        return self._inner.intent

    def __aiter__(self) -> AsyncIterator[str]:
        if self._level.at_least(RiskLevel.MEDIUM):
            return self._completed()
        return self._screened()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def _completed(self) -> AsyncIterator[str]:
        text = ""
        async for piece in self._inner:
            text += piece
            yield piece
        if self._level is RiskLevel.MEDIUM:
            missing = (
                []
                if names_line(text, self._resources)
                else [medium_line(self._resources, self._seed)]
            )
        else:
            missing = high_elements(text, self._resources)
        if missing:
            yield _joined(text, " ".join(missing))

    async def _screened(self) -> AsyncIterator[str]:
        sent = ""  # everything released
        opened = ""  # the released start of the sentence being written
        held = ""  # the rest of that sentence, from its first opener on
        async for piece in self._inner:
            held += piece
            done, held = split_sentences(held)
            if len(held) >= MAX_HELD_CHARS:
                done, held = [*done, held], ""
            out = ""
            for sentence in done:
                out += self._settle(opened, sentence, sent + out)
                opened = ""
            free = _free_prefix(held)
            opened, held = opened + free, held[len(free) :]
            out += free
            if out:
                sent += out
                yield out
        kept = self._settle(opened, held, sent) if held else ""
        if kept:
            sent += kept
            yield kept
        tail = self._tail(sent)
        if tail:
            yield _joined(sent, tail)

    def _settle(self, opened: str, rest: str, sent: str) -> str:
        """What to send of a finished sentence whose first part `opened` is already out."""
        if not opened.strip():
            return self._screen(rest, sent)
        if not carries_crisis_resources(opened + rest):
            return rest
        self.dropped += 1
        if _LEADS_INTO_VERB.search(opened) or opened.rstrip().endswith(","):
            return BRIDGE
        return "\u2026 " if opened[-1:].isspace() else "\u2026"

    def _screen(self, sentence: str, sent: str) -> str:
        """The sentence, or what stands in for it when it names crisis resources."""
        if not carries_crisis_resources(sentence):
            return sentence
        self.dropped += 1
        if self._level is RiskLevel.LOW and self.dropped == 1 and not suggests_support(sent):
            return low_suggestion(self._seed, self._recent) + " "
        return ""

    def _tail(self, sent: str) -> str:
        if not sent.strip():
            return LISTENING
        if self._level is not RiskLevel.LOW:
            return ""
        if suggests_support(sent) or any(suggests_support(text) for text in self._recent):
            return ""
        return low_suggestion(self._seed, self._recent)


def _free_prefix(text: str) -> str:
    """The start of `text` that cannot be part of a crisis resource's name: up to the first
    opener, and never a last word that could still grow into one ("ca" of "call")."""
    found = _OPENER.search(text)
    if found is not None:
        return text[: found.start()]
    last = re.search(r"[^\W_]+$", text)
    if last is not None and any(o.startswith(last.group().lower()) for o in _OPENERS):
        return text[: last.start()]
    return text


def _joined(text: str, addition: str) -> str:
    """`addition`, spaced from the text before it, which gets a full stop when its last
    sentence was cut off without one ("...with your issues" + "If it ever feels...")."""
    if not text or text[-1].isspace():
        return addition
    last = text[-1]
    stop = "." if last.isalnum() or last in ")'\"\u2019\u201d" else ""
    return stop + " " + addition
