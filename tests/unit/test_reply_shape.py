"""The sentence bound and the one-turn rule of a streamed reply."""

from __future__ import annotations

import pytest

from models.llm.reply_shape import ReplyShape


def stream(shape: ReplyShape, deltas: list[str]) -> tuple[str, bool]:
    """Text sent and whether the shape stopped the reply, as a decode loop would drive it."""
    sent = ""
    for delta in deltas:
        piece = shape.add(delta)
        sent += piece.send
        if piece.stop:
            return sent, True
    return sent + shape.finish(), False


def test_stops_right_after_the_fourth_sentence_by_default() -> None:
    deltas = ["That sounds hard.", " You tried.", " It makes sense!", " Are you ok?", " Also"]

    sent, stopped = stream(ReplyShape(), deltas)

    assert stopped
    assert sent == "That sounds hard. You tried. It makes sense! Are you ok?"


def test_a_sentence_end_inside_a_delta_cuts_the_delta_there() -> None:
    sent, stopped = stream(
        ReplyShape(max_sentences=2), ["I hear", " you. That is", " a lot. And more"]
    )

    assert stopped
    assert sent == "I hear you. That is a lot."


def test_a_short_reply_passes_unchanged_and_is_not_stopped() -> None:
    deltas = ["It sounds", " like a long week.", " What helped", " before?"]

    sent, stopped = stream(ReplyShape(), deltas)

    assert not stopped
    assert sent == "It sounds like a long week. What helped before?"


@pytest.mark.parametrize(
    "marker", ["\nUser: ok", "\nuser:", "\n\nAnother reply", "\n  Assistant : hi"]
)
def test_a_second_turn_written_into_the_reply_ends_it(marker: str) -> None:
    deltas = ["I am glad you told me.", marker[:3], marker[3:]]

    sent, stopped = stream(ReplyShape(), deltas)

    assert stopped
    assert sent == "I am glad you told me."


def test_a_line_that_turns_out_not_to_be_a_role_label_is_sent() -> None:
    sent, stopped = stream(ReplyShape(), ["I am here.", "\nThanks", " for sharing that."])

    assert not stopped
    assert sent == "I am here.\nThanks for sharing that."


def test_numbers_and_decimals_are_not_sentence_ends() -> None:
    sent, stopped = stream(
        ReplyShape(max_sentences=1), ["Try 2.5 minutes of", " breathing 1. Then rest."]
    )

    assert stopped
    assert sent == "Try 2.5 minutes of breathing 1. Then rest."


def test_nothing_is_sent_after_the_stop() -> None:
    shape = ReplyShape(max_sentences=1)
    assert shape.add("Done.").stop

    assert shape.add(" More text.").send == ""
    assert shape.finish() == ""
    assert shape.text == "Done."


def test_a_bound_below_one_sentence_is_refused() -> None:
    with pytest.raises(ValueError):
        ReplyShape(max_sentences=0)
