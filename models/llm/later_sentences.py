"""The chosen reply's later sentences, each checked as it ends before it is sent.

`ReplyChooser` picks a draft on its first sentence, so what the draft writes afterwards was never
checked: a served reply to "I've been feeling really lonely since I moved to a new city for
work" went on to "your new colleagues", whom the person never mentioned. Each sentence after the
first is therefore held until it ends and then held to the chooser's own checks: it may not
speak of a person the conversation never mentioned (`names_unmentioned_person`, against the
same context the chooser used), and it may not add a question when the reply already asked one
(`several_questions`), and it may not misread the person (`models.llm.misreadings`: "I'm sorry
to hear that. I am glad you are feeling tired"). A sentence that fails is not sent and the reply
ends before it: the sentences already out read as a whole reply, while a sentence dropped from
the middle could leave the next one referring to it. The first sentence was chosen, so it is
always kept.

The cost is that later sentences go out whole rather than word by word, as the first one does.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from enum import Enum

from haven.risk import RiskLevel
from models.llm.candidates import names_unmentioned_person, several_questions
from models.llm.misreadings import misreadings
from models.llm.reply_shape import sentence_ends


class LaterState(Enum):
    OPEN = "open"  # each sentence goes out once it ends and passes
    CUT = "cut"  # a sentence failed; the reply ended before it


class LaterSentences:
    """Feed the chosen draft's further pieces to `add`, then call `finish` when it ends.

    `chosen` is the draft's text when it was chosen: its first sentence goes out at once
    (`first`); anything written after that sentence's end is held like any later text.
    `context` is the conversation's texts, both sides, as the chooser was given them;
    `level`: the person's message's risk level.
    """

    def __init__(
        self, chosen: str, context: Sequence[str], *, level: RiskLevel = RiskLevel.NONE
    ) -> None:
        ends = sentence_ends(chosen)
        cut = ends[0] if ends else len(chosen)
        self.first = chosen[:cut]
        self._sent = self.first  # every sentence released, for the question count
        self._held = chosen[cut:]  # the sentence being written, not yet sent
        self._context = list(context)
        self._level = level
        self.state = LaterState.OPEN
        self.cut_by: str | None = None  # the fault that ended the reply early

    def add(self, piece: str) -> str:
        """What to send now: the sentences `piece` completes that pass, else nothing."""
        if self.state is LaterState.CUT:
            return ""
        self._held += piece
        # An end at the very end of the held text may still grow ('sad.' + '"'); the next
        # piece, or `finish`, settles it. So the split is the same however the text came.
        ends = [end for end in sentence_ends(self._held) if end < len(self._held)]
        out = ""
        start = 0
        for end in ends:
            sentence = self._held[start:end]
            if not self._passes(sentence):
                self._held = ""
                return out
            out += sentence
            start = end
        self._held = self._held[start:]
        return out

    def finish(self) -> str:
        """The last sentence, when the model stopped by itself or the shape ended the reply."""
        if self.state is LaterState.CUT or not self._held.strip():
            return ""
        held, self._held = self._held, ""
        return held if self._passes(held) else ""

    def _passes(self, sentence: str) -> bool:
        if names_unmentioned_person(sentence, self._context):
            self.cut_by = "invented_person"
        elif "?" in sentence and several_questions(self._sent + sentence):
            self.cut_by = "several_questions"
        elif found := misreadings(sentence, self._context, level=self._level):
            self.cut_by = found[0]
        else:
            self._sent += sentence
            return True
        self.state = LaterState.CUT
        return False


async def checked(
    pieces: AsyncGenerator[str, None], later: LaterSentences
) -> AsyncGenerator[str, None]:
    """`pieces` released sentence by sentence through `later`. A failing sentence closes
    `pieces` at once, so that the model stops writing a reply that will not be sent."""
    async with aclosing(pieces) as text:
        async for piece in text:
            send = later.add(piece)
            if send:
                yield send
            if later.state is LaterState.CUT:
                return
    rest = later.finish()
    if rest:
        yield rest


def checked_reply(
    chosen: str, whole: str, context: Sequence[str], *, level: RiskLevel = RiskLevel.NONE
) -> tuple[str, str | None]:
    """What the service sends of a draft chosen at `chosen` and written to `whole`, and the
    fault that cut it short (None if nothing did); for the evaluation, which writes drafts whole."""
    later = LaterSentences(chosen, context, level=level)
    text = later.first + later.add(whole[len(chosen) :]) + later.finish()
    return text, later.cut_by
