"""Intent planner: committed weights, runtime behaviour, feature folding and the ESConv mapping."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from haven.backends import ChatTurn
from models.intent import esconv
from models.intent.features import Recipe, fold_turns
from models.intent.head import PlannerHead, load_head, save_head
from models.intent.metrics import summarise
from models.intent.planner import DEFAULT_WEIGHTS_PATH, INTENTS, IntentPlanner, IntentPrediction

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "intent"


def user(text: str) -> ChatTurn:
    return ChatTurn(role="user", text=text)


def assistant(text: str) -> ChatTurn:
    return ChatTurn(role="assistant", text=text)


CONTEXTS: list[list[ChatTurn]] = [
    [user("Hi")],
    [
        user("I've been feeling really low since my dog died."),
        assistant("I'm so sorry. Losing a companion like that hurts a lot."),
        user("Everyone says it's just a dog, but he was my best friend."),
    ],
    [
        user("Work is overwhelming me."),
        assistant("What part of work feels heaviest right now?"),
        user("The deadlines."),
        user("And my manager keeps adding more tasks."),
    ],
]


@pytest.fixture(scope="module")
def planner() -> IntentPlanner:
    return IntentPlanner.load(threads=1)


def test_intent_list_is_the_service_contract() -> None:
    assert INTENTS == ("validate", "reflect", "question", "reassure", "suggest", "inform", "other")


def test_committed_weights_are_small_and_describe_themselves() -> None:
    assert DEFAULT_WEIGHTS_PATH.stat().st_size < 1_000_000
    head = load_head(DEFAULT_WEIGHTS_PATH)
    assert head.labels == INTENTS
    assert head.version.endswith(head.digest)
    assert head.weight.shape == (len(INTENTS), head.recipe.dim)
    valid = head.training["valid"]
    baseline = head.training["valid_majority_baseline"]
    assert isinstance(valid, dict) and isinstance(baseline, dict)
    assert valid["accuracy"] > 1 / 3 > baseline["accuracy"]


def test_plan_returns_one_of_seven_intents_with_scores_summing_to_one(
    planner: IntentPlanner,
) -> None:
    for context in CONTEXTS:
        prediction = planner.plan(context)
        assert isinstance(prediction, IntentPrediction)
        assert tuple(prediction.scores) == INTENTS
        assert prediction.intent == max(prediction.scores, key=prediction.scores.__getitem__)
        assert sum(prediction.scores.values()) == pytest.approx(1.0, abs=1e-6)
        assert all(0.0 <= p <= 1.0 for p in prediction.scores.values())


def test_empty_context_opens_with_a_question(planner: IntentPlanner) -> None:
    prediction = planner.plan([])
    assert prediction.intent == "question"
    assert sum(prediction.scores.values()) == pytest.approx(1.0, abs=1e-6)


def test_farewell_is_answered_with_a_closing_not_a_new_question(planner: IntentPlanner) -> None:
    context = [
        user("I'm stressed about work"),
        assistant("What is making it stressful?"),
        user("My boss keeps piling on tasks"),
        assistant("Maybe you could talk to your boss about priorities."),
        user("Thank you so much, talking really helped. I have to go now, bye!"),
    ]
    prediction = planner.plan(context)
    assert prediction.intent == "other"
    assert prediction.scores["question"] < prediction.scores["other"] / 2


def test_plan_batch_keeps_order_and_matches_single_calls(planner: IntentPlanner) -> None:
    batch = planner.plan_batch([*CONTEXTS, []])
    planner.clear_cache()
    singles = [planner.plan(c) for c in [*CONTEXTS, []]]
    assert [p.intent for p in batch] == [p.intent for p in singles]
    for b, s in zip(batch, singles, strict=True):
        assert b.scores == pytest.approx(s.scores, abs=1e-4)
    assert planner.plan_batch([]) == []


def test_unknown_role_is_rejected(planner: IntentPlanner) -> None:
    with pytest.raises(ValueError, match="role"):
        planner.plan([esconv.Turn("system", "be nice")])


def test_consecutive_messages_of_one_role_fold_into_one_turn() -> None:
    turns = fold_turns(
        [user("The deadlines."), user("  And  my manager. "), user(""), assistant("I see.")]
    )
    assert turns == [("user", "The deadlines. And my manager.", 2), ("assistant", "I see.", 1)]


def test_head_file_round_trips_byte_identically(tmp_path: pathlib.Path) -> None:
    recipe = Recipe()
    rng = np.random.default_rng(0)
    head = PlannerHead(
        rng.normal(size=(len(INTENTS), recipe.dim)).astype(np.float32),
        rng.normal(size=len(INTENTS)).astype(np.float32),
        version="test",
        training={"note": "synthetic"},
    )
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_head(head, first)
    loaded = load_head(first)
    save_head(loaded, second)
    assert first.read_bytes() == second.read_bytes()
    assert np.array_equal(loaded.weight, head.weight) and loaded.recipe == recipe


def test_esconv_mapping_covers_every_intent_and_drops_self_disclosure() -> None:
    assert sorted(esconv.STRATEGY_TO_INTENT.values()) == sorted(INTENTS)
    assert esconv.intent_for_strategy("[Self-disclosure]") is None
    assert esconv.intent_for_strategy("Reflection of feelings") == "validate"
    with pytest.raises(ValueError, match="unknown"):
        esconv.intent_for_strategy("Hypnosis")


def test_esconv_examples_label_each_supporter_turn_by_its_first_utterance() -> None:
    lines = (FIXTURES / "esconv-tiny.json").read_text(encoding="utf-8").splitlines()
    dialogs = [json.loads(line)["dialog"] for line in lines]
    examples = [
        e for d, dialog in enumerate(dialogs) for e in esconv.examples_from_dialogue(dialog, d)
    ]
    assert [e.intent for e in examples] == ["question", "reflect", "reassure", "other", "inform"]
    assert [len(e.context) for e in examples] == [1, 6, 9, 0, 2]
    # The turn that opened with Self-disclosure is no example, but what was said stays in context.
    assert esconv.Turn("assistant", "I was worried about my job once too.") in examples[1].context
    assert all(t.role in ("user", "assistant") for e in examples for t in e.context)


def test_metrics_macro_f1_averages_intents_seen_in_labels_or_predictions() -> None:
    result = summarise(["question", "question", "suggest"], ["question", "suggest", "suggest"])
    assert result["n"] == 3 and result["accuracy"] == pytest.approx(0.6667)
    assert result["per_intent"]["question"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": 0.6667,
        "support": 2,
    }
    assert result["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2, abs=1e-4)
    assert summarise([], [])["accuracy"] is None
