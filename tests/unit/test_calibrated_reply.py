"""Generated replies shaped to their level: none and low never carry crisis resources, medium
always names the line, a trusted high-risk reply gets the line and a safety question."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from actors.calibrated_reply import MAX_HELD_CHARS, CalibratedStream
from haven.crisis_resources import resources_for
from haven.reply_elements import (
    LISTENING,
    asks_about_safety,
    carries_crisis_resources,
    names_line,
    suggests_support,
)
from haven.risk import RiskLevel
from haven.settings import Settings

US = resources_for("US", Settings())
GB = resources_for("GB", Settings())
HOTLINE_REPLY = (
    "That sounds like a really stressful week. ",
    "If you ever feel overwhelmed, you can call the crisis hotline at ",
    "988 or text HOME to 741741. ",
    "What has been the hardest part?",
)


class Scripted:
    def __init__(self, pieces: Sequence[str]) -> None:
        self._pieces = pieces
        self.closed = False

    @property
    def intent(self) -> str:
        return "validate"

    async def _gen(self) -> AsyncIterator[str]:
        for piece in self._pieces:
            yield piece

    def __aiter__(self) -> AsyncIterator[str]:
        return self._gen()

    async def aclose(self) -> None:
        self.closed = True


async def run(
    pieces: Sequence[str], level: RiskLevel, resources=US, recent: Sequence[str] = ()
) -> list[str]:  # type: ignore[no-untyped-def]
    stream = CalibratedStream(Scripted(pieces), level, resources, seed="s:m", recent=recent)
    return [piece async for piece in stream]


async def test_none_reply_drops_the_sentence_that_names_a_hotline() -> None:
    out = await run(HOTLINE_REPLY, RiskLevel.NONE)
    text = "".join(out)
    assert not carries_crisis_resources(text)
    # The sentence's start went out before the hotline did; a reviewed clause finishes it.
    assert text == (
        "That sounds like a really stressful week. If you ever feel overwhelmed, you can "
        "talk to someone you trust. What has been the hardest part?"
    )


async def test_low_reply_suggests_someone_they_trust_instead_of_a_crisis_line() -> None:
    text = "".join(await run(HOTLINE_REPLY, RiskLevel.LOW))
    assert not carries_crisis_resources(text) and suggests_support(text)
    assert text.startswith("That sounds like a really stressful week. ")
    assert text.endswith("What has been the hardest part?")


async def test_low_reply_without_a_suggestion_gets_one_unless_a_recent_reply_made_it() -> None:
    plain = ("Moving somewhere new can feel lonely. ", "How are your evenings?")
    assert suggests_support("".join(await run(plain, RiskLevel.LOW)))
    recent = ["It might help to talk this through with someone you trust."]
    assert "".join(await run(plain, RiskLevel.LOW, recent=recent)) == "".join(plain)


async def test_none_reply_that_was_only_hotlines_becomes_a_listening_reply() -> None:
    text = "".join(await run(("Call 988 now. ", "Samaritans are there too."), RiskLevel.NONE))
    assert text == LISTENING


async def test_screened_reply_streams_each_piece_as_it_comes() -> None:
    out = await run(("I hear ", "you. ", "That sounds ", "hard."), RiskLevel.NONE)
    assert out == ["I hear ", "you. ", "That sounds ", "hard."]


async def test_text_from_a_word_that_could_name_a_line_waits_for_its_sentence_end() -> None:
    pieces = ("It might help to ", "ca", "ll a friend", " tonight. ", "How are you?")
    out = await run(pieces, RiskLevel.NONE)
    # "ca" could become "call": held with the rest of its sentence, then sent whole.
    assert out == ["It might help to ", "call a friend tonight. ", "How are you?"]


async def test_a_sentence_ending_in_a_line_after_other_words_is_finished_with_a_full_stop() -> None:
    out = await run(("The number is ", "988. ", "Take care."), RiskLevel.NONE)
    assert "".join(out) == "The number is \u2026 Take care."


async def test_a_run_on_without_punctuation_still_streams() -> None:
    words = [f"word{n} " for n in range(80)]
    out = await run(words, RiskLevel.NONE)
    assert len(out) == len(words) and "".join(out) == "".join(words)


async def test_a_held_run_on_is_released_once_it_is_long() -> None:
    words = ["Call ", *[f"w{n} " for n in range(60)], "end."]
    out = await run(words, RiskLevel.NONE)
    assert len(out) > 1 and len(out[0]) >= MAX_HELD_CHARS and "".join(out) == "".join(words)


@pytest.mark.parametrize("resources", [US, GB])
async def test_medium_reply_names_the_line(resources) -> None:  # type: ignore[no-untyped-def]
    pieces = ("That sounds heavy to carry. ", "How are you feeling right now?")
    out = await run(pieces, RiskLevel.MEDIUM, resources)
    text = "".join(out)
    assert out[: len(pieces)] == list(pieces)  # the model's words streamed as they came
    assert names_line(text, resources) and "right now" in out[-1]


@pytest.mark.parametrize(
    ("ending", "joint"),
    [("your issues", "your issues. "), ("your issues.", "your issues. "), ("issues. ", "issues. ")],
)
async def test_the_line_after_an_unfinished_sentence_starts_a_sentence_of_its_own(
    ending: str, joint: str
) -> None:
    text = "".join(await run(("I hear how heavy this is, and ", ending), RiskLevel.MEDIUM))
    assert names_line(text, US)
    assert joint in text and "  " not in text


async def test_medium_reply_that_names_the_line_is_left_as_written() -> None:
    pieces = ("You can call or text 988 any time. ", "How are you right now?")
    assert await run(pieces, RiskLevel.MEDIUM) == list(pieces)


async def test_trusted_high_reply_gets_the_line_and_a_safety_question() -> None:
    text = "".join(await run(("I hear how much pain you're in.",), RiskLevel.HIGH))
    assert names_line(text, US) and asks_about_safety(text)
    assert text.startswith("I hear how much pain you're in. You can call 988")


async def test_trusted_high_reply_with_both_elements_is_left_as_written() -> None:
    pieces = ("Please call 988 now. ", "Are you safe right now?")
    assert await run(pieces, RiskLevel.HIGH) == list(pieces)


async def test_closing_the_calibrated_stream_closes_the_model_stream() -> None:
    inner = Scripted(["a"])
    await CalibratedStream(inner, RiskLevel.NONE, US, seed="s").aclose()
    assert inner.closed


@pytest.mark.parametrize(
    "sentence",
    [
        "You could reach out to the Samaritans.",
        "Call 1-800-273-8255 if you need to.",
        "Please go to the emergency room.",
        "Text SHOUT to 85258.",
    ],
)
def test_crisis_resources_are_recognised(sentence: str) -> None:
    assert carries_crisis_resources(sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        "Walking 10,000 steps a day helped a friend of mine.",
        "Maybe call your sister tonight?",
        "A crisis at work can take over everything.",
    ],
)
def test_everyday_words_are_not_crisis_resources(sentence: str) -> None:
    assert not carries_crisis_resources(sentence)
