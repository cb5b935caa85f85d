"""Reply text near the length bound: whole sentences when possible, whole words always."""

from __future__ import annotations

from models.llm.text import SentenceBoundedText, ends_sentence, sentence_window


def feed(pieces: list[str], max_new_tokens: int, *, cut: bool) -> tuple[list[str], str]:
    """Sends `pieces` as one token each; returns what was released on the way and at the end."""
    text = SentenceBoundedText(max_new_tokens)
    released = [text.add(piece, count) for count, piece in enumerate(pieces, start=1)]
    return released, text.finish(cut_by_bound=cut)


def test_text_before_the_window_streams_without_delay() -> None:
    pieces = ["I ", "hear ", "you"]

    released, tail = feed(pieces, max_new_tokens=100, cut=False)

    assert released == pieces
    assert tail == ""


def test_in_the_window_text_is_released_a_sentence_at_a_time() -> None:
    text = SentenceBoundedText(max_new_tokens=8)  # the last two tokens are held

    assert text.add("It", 1) == "It"
    assert text.add(" helps", 6) == ""
    assert text.add(". Then", 7) == " helps."
    assert text.finish(cut_by_bound=False) == " Then"


def test_a_sentence_cut_by_the_bound_is_dropped() -> None:
    # 12 tokens: the last 3 are the window.
    pieces = ["That", " sounds", " really", " hard", " for", " you", " right", " now"]
    pieces += [". You", " could", " try", " to"]

    released, tail = feed(pieces, max_new_tokens=12, cut=True)

    assert "".join(released) + tail == "That sounds really hard for you right now."


def test_the_unfinished_sentence_after_a_finished_one_is_dropped_whole() -> None:
    pieces = ["All", " good", " here.", " And", " then"]

    released, tail = feed(pieces, max_new_tokens=5, cut=True)  # window: the last token

    assert "".join(released) + tail == "All good here."


def test_without_any_sentence_end_the_cut_falls_between_words_and_is_marked() -> None:
    pieces = ["so", " I", " was", " thinking", " abo"]

    released, tail = feed(pieces, max_new_tokens=5, cut=True)  # window: the last token

    assert "".join(released) + tail == "so I was thinking\u2026"


def test_a_reply_the_model_ended_itself_is_released_whole() -> None:
    pieces = ["Take", " care", " and", " rest"]

    released, tail = feed(pieces, max_new_tokens=5, cut=False)

    assert "".join(released) + tail == "Take care and rest"


def test_numbers_and_decimals_are_not_sentence_ends() -> None:
    assert not ends_sentence("Try this: 1.")
    assert not ends_sentence("about 2.5")
    assert ends_sentence("You are not alone.")
    assert ends_sentence('"Really?" ')
    assert sentence_window(160) == 25
    assert sentence_window(8) == 2
