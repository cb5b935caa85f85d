"""Long texts read whole: overlapping windows and the max-pooling of their readings."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from haven.risk import RiskLevel
from models.safety import windows


class WordTokenizer:
    """One token per word, with character offsets, as a fast Hugging Face tokenizer gives."""

    def __call__(self, text: str, **_: Any) -> dict[str, list[tuple[int, int]]]:
        return {"offset_mapping": [m.span() for m in re.finditer(r"\S+", text)]}


def _words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def test_text_that_fits_is_one_window() -> None:
    assert windows.split(WordTokenizer(), "short text", size=10, overlap=2) == ["short text"]
    text = _words(10)  # more characters than the size, but only ten tokens
    assert windows.split(WordTokenizer(), text, size=10, overlap=2) == [text]


def test_long_text_is_split_into_overlapping_windows_that_cover_it() -> None:
    text = _words(25)
    parts = windows.split(WordTokenizer(), text, size=10, overlap=3)
    tokens = [p.split() for p in parts]
    assert [len(t) for t in tokens] == [10, 10, 10, 10]
    assert tokens[0][0] == "w0" and tokens[-1][-1] == "w24"
    # Each window starts `size - overlap` tokens after the previous one (3 tokens shared); the
    # last one is moved back to end at the text's end.
    assert [t[0] for t in tokens] == ["w0", "w7", "w14", "w15"]
    assert tokens[0][-3:] == tokens[1][:3]
    covered = {word for t in tokens for word in t}
    assert covered == set(text.split())


def test_last_window_ends_at_the_text_end_without_an_empty_tail() -> None:
    parts = windows.split(WordTokenizer(), _words(17), size=10, overlap=3)
    assert [p.split()[0] for p in parts] == ["w0", "w7"]
    assert parts[-1].split()[-1] == "w16"


def test_overlap_must_be_below_the_size() -> None:
    with pytest.raises(ValueError, match="overlap"):
        windows.split(WordTokenizer(), _words(30), size=10, overlap=10)


def test_pool_max_takes_each_levels_most_severe_window() -> None:
    rows = np.array(
        [
            [0.9, 0.1, 0.0, 0.0, 0.0],  # an ordinary paragraph
            [0.1, 0.1, 0.2, 0.5, 0.1],  # the worrying one
            [0.2, 0.2, 0.2, 0.1, 0.3],
        ]
    )
    pooled = windows.pool_max(rows)
    at_least = np.cumsum(pooled[::-1])[::-1]
    np.testing.assert_allclose(at_least, [1.0, 0.9, 0.8, 0.6, 0.3])
    assert pooled.sum() == pytest.approx(1.0)
    assert (pooled >= 0).all()


def test_pool_of_one_window_is_that_window() -> None:
    row = np.array([[0.2, 0.3, 0.1, 0.3, 0.1]])
    np.testing.assert_allclose(windows.pool_max(row), row[0])


def test_pool_by_owner_keeps_text_order() -> None:
    probs = np.array(
        [
            [1.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 1.0],
            [0.5, 0.5, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0, 0.0],
        ]
    )
    pooled = windows.pool_by_owner(probs, [0, 1, 1, 2], 3)
    np.testing.assert_allclose(pooled[0], probs[0])
    np.testing.assert_allclose(pooled[1], [0.0, 0.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(pooled[2], probs[3])


FILLER = (
    "Last weekend I helped my sister move into her new flat across town. We rented a van, "
    "carried boxes up three flights of stairs and argued about where the sofa should go. "
    "Afterwards we ordered pizza and watched an old film on her laptop because the TV was still "
    "packed. "
) * 6
# The rule layer does not recognise this sentence: only the model can catch it.
LATE = "I have been saving my pills for weeks and I know exactly when I will take them all."


def test_long_post_whose_only_crisis_sentence_is_at_its_end_is_caught() -> None:
    from models.safety import rules
    from models.safety.classifier import SafetyModel

    model = SafetyModel.load(threads=1)
    post = FILLER + LATE
    assert rules.check(post) is None
    parts = windows.split(model.encoder.tokenizer, post)
    assert len(parts) > 1 and parts[-1].endswith(LATE)
    # The first window alone (what truncation kept) reads as ordinary.
    first, whole = model.assess([parts[0], post])
    assert not first.risk_level.at_least(RiskLevel.MEDIUM), first.probabilities
    assert whole.risk_level.at_least(RiskLevel.HIGH), whole.probabilities
    # In a batch with short texts, each keeps its own reading.
    batch = model.assess(["hello there", post, "I feel a bit anxious about my exam tomorrow"])
    assert batch[1].risk_level == whole.risk_level
    assert not batch[0].risk_level.at_least(RiskLevel.MEDIUM)
