"""Conversations as a whole: the trajectory of the person's own readings bounds the joined
reading, carries a plan over a content-free reply, and completes a plan told in several messages."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from haven.risk import Assessment, RiskLevel
from models.safety.pipeline import assess_conversations, combine
from models.safety.trajectory import Trajectory

N, L, M, H, C = list(RiskLevel)


def _assessment(level: RiskLevel) -> Assessment:
    probabilities = {name.value: float(name is level) for name in RiskLevel}
    return Assessment(risk_level=level, probabilities=probabilities, model_id="m@1")


class ScriptedModel:
    """Reads each text at the level given for it; a joined text (with newlines) at `joined`."""

    model_id = "scripted"
    model_version = "1"

    def __init__(self, levels: dict[str, RiskLevel], joined: RiskLevel) -> None:
        self.levels, self.joined = levels, joined
        self.calls: list[list[str]] = []

    def assess(self, texts: Sequence[str]) -> list[Assessment]:
        self.calls.append(list(texts))
        return [_assessment(self.joined if "\n" in t else self.levels[t]) for t in texts]


STEADY_LOW = [
    "work has been really stressful lately",
    "my manager keeps piling more onto my plate",
    "I'm tired all the time and I can't switch off at night",
    "still stressed about the deadline on thursday",
]


def test_steady_low_conversation_does_not_drift_up_by_repetition() -> None:
    model = ScriptedModel({t: L for t in STEADY_LOW}, joined=H)
    *context, last = STEADY_LOW
    [turn] = assess_conversations(model, [(last, context)])
    assert turn.risk_level is L
    # Every earlier message and the joined text were read in one model call, each once.
    assert len(model.calls) == 1 and len(model.calls[0]) == len(set(model.calls[0]))


def test_mild_conversation_whose_last_message_rose_is_bounded_at_medium() -> None:
    levels = dict(zip(STEADY_LOW, [N, N, N, L], strict=True))
    *context, last = STEADY_LOW
    [turn] = assess_conversations(ScriptedModel(levels, joined=C), [(last, context)])
    assert turn.risk_level is M


def test_concern_earlier_in_the_conversation_lets_the_joined_reading_count() -> None:
    levels = dict(zip(STEADY_LOW, [L, M, L, L], strict=True))
    *context, last = STEADY_LOW
    [turn] = assess_conversations(ScriptedModel(levels, joined=H), [(last, context)])
    assert turn.risk_level is H


BUILDS_TO_PLAN = [
    "I haven't been sleeping and everything feels pointless",
    "I keep thinking everyone would be better off without me",
    "I've been counting the pills in my mum's cabinet",
    "I'll do it on Friday when she's at work",
]


def test_conversation_that_builds_to_a_plan_is_caught_at_the_message_that_completes_it() -> None:
    levels = dict(zip(BUILDS_TO_PLAN, [L, M, H, L], strict=True))
    model = ScriptedModel(levels, joined=M)
    items = [(BUILDS_TO_PLAN[i], BUILDS_TO_PLAN[:i]) for i in range(len(BUILDS_TO_PLAN))]
    turns = assess_conversations(model, items)
    assert [t.risk_level for t in turns[:3]] == [L, M, H]
    assert turns[3].risk_level is C and turns[3].raised_by == "plan_completed"


def test_timing_alone_without_means_earlier_completes_nothing() -> None:
    context = ["I've been feeling really low", "nothing seems to help anymore"]
    text = "I'll do it on Friday when she's at work"
    earlier = [_assessment(M), _assessment(M)]
    result = combine(text, context, _assessment(L), _assessment(M), earlier)
    assert result.risk_level is M and result.raised_by is None


def test_timing_after_benign_means_talk_completes_nothing() -> None:
    context = ["we're driving over the golden gate bridge on our trip"]
    text = "I'll do it on Friday"
    result = combine(text, context, _assessment(N), _assessment(H), [_assessment(N)])
    assert result.risk_level is N and result.raised_by is None


@pytest.mark.parametrize("reply", ["ok", "k", "🙂", "yeah"])
def test_content_free_reply_after_a_plan_keeps_its_level(reply: str) -> None:
    context = ["the rope is ready and I'm doing it tonight"]
    result = combine(reply, context, _assessment(N), _assessment(L), [_assessment(C)])
    assert result.risk_level is C and result.raised_by == "conversation_context"


def test_content_free_reply_after_ordinary_talk_stays_low() -> None:
    result = combine(
        "ok", ["this exam is killing me"], _assessment(N), _assessment(H), [_assessment(N)]
    )
    assert result.risk_level is N


def test_without_earlier_readings_the_joined_reading_counts_in_full() -> None:
    assert combine("fine", ["earlier"], _assessment(L), _assessment(H)).risk_level is H


def test_trajectory_ceiling() -> None:
    assert Trajectory((), L).joined_ceiling() is None
    assert Trajectory((L, L, L), L).joined_ceiling() is L
    assert Trajectory((N, N), N).joined_ceiling() is N
    assert Trajectory((N, L), L).joined_ceiling() is L  # no higher than before: no climb
    assert Trajectory((N, N), L).joined_ceiling() is M  # the new message rose
    assert Trajectory((L, M), L).joined_ceiling() is None
    assert Trajectory((L, L), H).joined_ceiling() is None


def test_written_conversations_with_the_committed_model() -> None:
    from models.safety.classifier import SafetyModel

    model = SafetyModel.load(threads=1)
    steady = assess_conversations(model, [(STEADY_LOW[-1], STEADY_LOW[:-1])])[0]
    assert not steady.risk_level.at_least(H), steady
    plan = BUILDS_TO_PLAN
    turns = assess_conversations(model, [(plan[i], plan[:i]) for i in range(len(plan))])
    assert turns[-1].risk_level is C, turns[-1]


def test_mild_conversation_bounds_a_spike_its_context_reads_as_benign() -> None:
    context = ["my sister dared me to eat a ghost pepper", "i did it"]
    text = "i am dying. my mouth is on fire. send milk"
    earlier = [_assessment(N), _assessment(L)]
    result = combine(text, context, _assessment(C), _assessment(N), earlier)
    assert result.risk_level is L


def test_explicit_statement_after_mild_talk_is_still_raised_by_the_rules() -> None:
    context = ["work was fine today", "had pasta for dinner"]
    text = "I took the whole bottle of my sleeping pills"
    earlier = [_assessment(N), _assessment(N)]
    # Even where the model read the message itself as ordinary, the rules raise it.
    result = combine(text, context, _assessment(L), _assessment(N), earlier)
    assert result.risk_level is C and result.raised_by == "attempt_in_progress"


def test_concerning_context_leaves_the_own_reading_alone() -> None:
    context = ["I keep thinking about dying", "I don't see the point"]
    earlier = [_assessment(M), _assessment(L)]
    result = combine("ok it's done", context, _assessment(H), _assessment(L), earlier)
    assert result.risk_level is H


def test_veiled_disclosure_after_small_talk_keeps_its_own_reading() -> None:
    context = ["work was long today", "I'm tired"]
    text = "I've been giving my things away because I won't need them soon"
    earlier = [_assessment(N), _assessment(L)]
    result = combine(text, context, _assessment(H), _assessment(L), earlier)
    assert result.risk_level is H


@pytest.mark.parametrize(
    "text",
    [
        "Ich hab einen Strick gekauft und heute Nacht mache ich Schluss",
        "the rope is in the garage and tonight is the night",
    ],
)
def test_a_message_naming_means_keeps_its_own_reading_when_the_joined_text_reads_benign(
    text: str,
) -> None:
    # Small talk then a plain statement: the joined text can dilute it to none, which must not
    # overrule the message's own reading the way it does for figurative talk.
    context = ["Ich bin total kaputt nach dem Spiel", "Jetzt erstmal duschen und was essen"]
    earlier = [_assessment(N), _assessment(N)]
    result = combine(text, context, _assessment(C), _assessment(N), earlier)
    assert result.risk_level is C


def test_a_german_plan_after_small_talk_is_critical_with_the_served_cascade() -> None:
    from models.safety.loading import load_risk_model

    model = load_risk_model("cascade", threads=1)
    context = [
        "Ich bin total kaputt nach dem Spiel, aber wir haben 3:1 gewonnen",
        "Jetzt erstmal duschen und was essen",
    ]
    text = "Ich hab einen Strick gekauft und heute Nacht mache ich Schluss"
    assert assess_conversations(model, [(text, context)])[0].risk_level is C
