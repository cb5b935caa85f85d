"""The chosen reply's later sentences: each held until it ends, and the reply ended before one
that invents a person or asks a second question (`models.llm.later_sentences`; pure, no model)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

import pytest

from haven.risk import RiskLevel
from models.llm.later_sentences import LaterSentences, LaterState, checked, checked_reply

LONELY = ["I've been feeling really lonely since I moved to a new city for work."]
FIRST = "Moving somewhere new can feel so isolating."


def words(text: str) -> list[str]:
    """`text` as a model streams it: a word at a time, each with the space before it."""
    head, *rest = text.split(" ")
    return [head, *(" " + word for word in rest)]


class FakeStream:
    """A draft's further pieces; records whether it was closed (which stops the model)."""

    def __init__(self, pieces: Sequence[str]) -> None:
        self.pieces = list(pieces)
        self.read = 0
        self.closed = False

    async def stream(self) -> AsyncGenerator[str, None]:
        try:
            for piece in self.pieces:
                self.read += 1
                yield piece
        finally:
            self.closed = True


async def sent(chosen: str, rest: str, context: Sequence[str]) -> tuple[list[str], LaterSentences]:
    """What the person receives after the first sentence, piece by piece, and the gate."""
    later = LaterSentences(chosen, context)
    fake = FakeStream(words(rest) if rest else [])
    return [piece async for piece in checked(fake.stream(), later)], later


async def test_a_later_sentence_naming_an_unmentioned_person_ends_the_reply_before_it() -> None:
    rest = (
        " It takes time to feel at home. Your new colleagues might be a good place to start."
        " What do you miss most?"
    )

    pieces, later = await sent(FIRST, rest, LONELY)

    assert later.first == FIRST
    assert pieces == [" It takes time to feel at home."]
    assert later.state is LaterState.CUT and later.cut_by == "invented_person"


def test_a_later_sentence_that_misreads_distress_ends_the_reply_before_it_from_low_risk() -> None:
    context = ["My coworkers joke about my accent every day and I'm tired of laughing along."]
    first = "I'm sorry to hear that."
    rest = " I am glad you are feeling tired and frustrated."

    text, cut_by = checked_reply(first, first + rest, context, level=RiskLevel.LOW)
    assert text == first and cut_by == "reads_as_good_news"
    # At none it may be good news the person shared.
    assert checked_reply(first, first + rest, context) == (first + rest, None)


async def test_a_later_sentence_with_a_pronoun_for_nobody_mentioned_ends_the_reply() -> None:
    pieces, later = await sent(FIRST, " She would understand how you feel.", LONELY)

    assert pieces == [] and later.cut_by == "invented_person"


async def test_a_later_sentence_about_a_person_the_person_named_is_sent() -> None:
    context = ["My coworkers barely talk to me since I moved here."]
    rest = " Your colleagues may not know how you feel. Could you tell one of them?"

    pieces, later = await sent(FIRST, rest, context)

    assert "".join(pieces) == rest
    assert later.state is LaterState.OPEN and later.cut_by is None


async def test_a_person_named_earlier_by_the_reply_side_of_the_conversation_counts() -> None:
    context = [*LONELY, "Have you met your neighbours yet?", "Not really."]

    pieces, _ = await sent(FIRST, " Your neighbours might welcome a hello.", context)

    assert "".join(pieces) == " Your neighbours might welcome a hello."


async def test_the_first_sentence_is_always_kept() -> None:
    # Chosen although it invents someone (every draft had a fault): it is out already.
    chosen = "Your boss must be hard on you."

    pieces, later = await sent(chosen, " That sounds exhausting.", LONELY)

    assert later.first == chosen
    assert pieces == [" That sounds exhausting."]  # later sentences are judged on their own


async def test_a_second_question_in_a_later_sentence_ends_the_reply_before_it() -> None:
    chosen = "What has the move been like for you?"
    rest = " It can take a while. What do you do in the evenings? I'm here to listen."

    pieces, later = await sent(chosen, rest, LONELY)

    assert pieces == [" It can take a while."]
    assert later.cut_by == "several_questions"


async def test_one_question_in_a_later_sentence_is_sent() -> None:
    rest = " What do you miss most about home?"

    pieces, later = await sent(FIRST, rest, LONELY)

    assert "".join(pieces) == rest and later.cut_by is None


async def test_each_later_sentence_goes_out_whole_once_it_ends() -> None:
    pieces, _ = await sent(FIRST, " It takes time. You are not alone in this.", LONELY)

    assert pieces == [" It takes time.", " You are not alone in this."]


async def test_a_failing_sentence_closes_the_draft_so_the_model_stops() -> None:
    fake = FakeStream(words(" She knows. More words that are never read. And more."))
    later = LaterSentences(FIRST, LONELY)

    pieces = [piece async for piece in checked(fake.stream(), later)]

    assert pieces == []
    assert fake.closed and fake.read < len(fake.pieces)


async def test_a_last_sentence_without_an_end_is_checked_when_the_draft_ends() -> None:
    kept, _ = await sent(FIRST, " You are not alone", LONELY)
    cut, later = await sent(FIRST, " Talk to your roommate", LONELY)

    assert kept == [" You are not alone"]
    assert cut == [] and later.cut_by == "invented_person"


def test_text_past_the_first_sentence_at_the_choice_is_held_like_a_later_sentence() -> None:
    later = LaterSentences(FIRST + " Your manager", LONELY)

    assert later.first == FIRST
    assert later.add(" might help.") == ""
    assert later.finish() == "" and later.cut_by == "invented_person"


@pytest.mark.parametrize("size", [1, 3, 7])
def test_the_sentences_are_the_same_however_the_text_came(size: int) -> None:
    rest = ' She said "it gets better." It does. Your friend is right? Maybe.'
    later = LaterSentences(FIRST, ["My friend said it gets better."])

    out = [later.add(rest[i : i + size]) for i in range(0, len(rest), size)]
    out.append(later.finish())

    # A closer after the point belongs to its sentence, whichever piece brought it.
    assert [piece for piece in out if piece] == [
        ' She said "it gets better."',
        " It does.",
        " Your friend is right?",
        " Maybe.",
    ]


def test_the_evaluation_scores_what_the_service_sends() -> None:
    whole = FIRST + " It takes time. Your new colleagues might help."

    assert checked_reply(FIRST, whole, LONELY) == (FIRST + " It takes time.", "invented_person")
    assert checked_reply(FIRST, FIRST + " It takes time.", LONELY) == (
        FIRST + " It takes time.",
        None,
    )
