"""Fine-tuning experiment for the intent planner: the input text, the labels and class weights."""

from __future__ import annotations

import pytest
import torch

from models.intent.esconv import Turn
from models.intent.finetune import class_weights, input_text, label_indices

SEP = "[SEP]"


def test_empty_context_is_turn_one_with_every_slot_missing() -> None:
    assert input_text([], SEP) == "turn 1: (none) [SEP] (none) [SEP] (none)"


def test_text_puts_latest_seeker_turn_first_then_supporter_then_earlier_seeker() -> None:
    context = [
        Turn("user", "Hi."),
        Turn("assistant", "Hello, how are you?"),
        Turn("user", "Not great."),
        Turn("assistant", "I'm sorry to hear that."),
        Turn("assistant", "What happened?"),
        Turn("user", "I lost my job."),
        Turn("user", "  And my   rent is due. "),
    ]
    # Two supporter turns so far, so the planned one is the third; consecutive messages of one
    # role are one turn, with whitespace collapsed as the frozen planner's features do.
    assert input_text(context, SEP) == (
        "turn 3: I lost my job. And my rent is due. [SEP] "
        "I'm sorry to hear that. What happened? [SEP] Not great."
    )


def test_seeker_opening_has_no_supporter_turn_yet() -> None:
    context = [Turn("user", "I can't sleep."), Turn("user", "")]
    assert input_text(context, SEP) == "turn 1: I can't sleep. [SEP] (none) [SEP] (none)"


def test_unknown_role_is_rejected() -> None:
    with pytest.raises(ValueError, match="role"):
        input_text([Turn("system", "x")], SEP)


def test_labels_map_to_the_planner_intent_order() -> None:
    intents = ["validate", "reflect", "question", "reassure", "suggest", "inform", "other"]
    assert label_indices(intents) == [0, 1, 2, 3, 4, 5, 6]
    assert label_indices(["other", "question", "other"]) == [6, 2, 6]


def test_strategy_name_is_not_accepted_as_a_label() -> None:
    with pytest.raises(ValueError, match="Self-disclosure"):
        label_indices(["question", "Self-disclosure"])


def test_class_weights_are_inverse_square_root_of_counts_with_mean_one() -> None:
    y = [0] * 4 + [1] * 16 + [2] * 1 + [3] * 4 + [4] * 4 + [5] * 4 + [6] * 4
    raw = torch.tensor([0.5, 0.25, 1.0, 0.5, 0.5, 0.5, 0.5])
    expected = raw / raw.mean()
    assert torch.allclose(class_weights(y), expected)
    assert class_weights(y).mean().item() == pytest.approx(1.0)


def test_class_absent_from_training_is_weighed_as_if_seen_once() -> None:
    weights = class_weights([2, 2, 2, 2])
    assert weights[0].item() == pytest.approx(weights[1].item())
    assert weights[0].item() == pytest.approx(2 * weights[2].item())
