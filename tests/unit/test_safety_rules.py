"""The rule layer: explicit plans, means, timing and attempts raise; figurative speech does not."""

from __future__ import annotations

import pytest

from haven.risk import Assessment, RiskLevel
from models.safety import rules
from models.safety.pipeline import combine

CRITICAL = [
    ("I took the whole bottle", "attempt_in_progress"),
    ("i just swallowed all of my sleeping pills", "attempt_in_progress"),
    ("I've taken 40 tablets, the pills are starting to kick in", "attempt_in_progress"),
    ("I\u2019m on the bridge and going to jump tonight", "at_location"),
    ("im standing on the ledge of the roof. i'm going to let go", "at_location"),
    ("the rope is ready", "means_ready"),
    ("I tied the noose this afternoon", "means_ready"),
    ("I'm going to kill myself tonight", "plan_with_timing"),
    (
        "My note is on the table and I'm going to kill myself when my husband leaves for work",
        "plan_with_timing",
    ),
    ("I'm going to do it when I'm alone, I have the pills", "plan_with_timing"),
    ("i'm gonna jump off the overpass in an hour", "plan_with_timing"),
    ("I have the pills. I'm going to do it tonight when everyone's asleep", "plan_with_timing"),
    ("I've written my suicide note and left it on the desk", "final_goodbye"),
    ("By the time anyone reads this I'll be gone", "final_goodbye"),
    ("tonite is my last nite", "final_goodbye"),
    ("the car is running in the closed garage and i'm in it", "attempt_in_progress"),
    ("I injected all my insulin pens and now I'm shaking", "attempt_in_progress"),
    ("I'm in the middle of trying to kill myself", "attempt_in_progress"),
    ("i'm trying to end my life right now", "attempt_in_progress"),
    ("i cut way deeper than i meant to and it wont stop bleeding", "attempt_in_progress"),
]
# A wish to be dead or not to wake up, said of oneself: medium (LABELLING.md).
MEDIUM = [
    "some mornings i'm disappointed i woke up",
    "I'm 81 and I find myself hoping each night that the Lord will take me before morning",
    "some days i wish i wouldn't wake up at all",
    "I wish I could go to sleep and never wake up",
    "honestly I'm only still here because of my dog",
    "everyone would be better off without me",
    "i dont see the point of living anymore",
]
HIGH = [
    ("I'm going to kill myself", "stated_intent"),
    ("I've made up my mind to end my life", "stated_intent"),
    ("I've been stockpiling my meds for weeks", "means_acquired"),
    ("I bought a rope so I can end it", "means_acquired"),
    ("I tried to kill myself last week", "recent_attempt"),
    ("what's the most painless way to die", "method_research"),
    ("how many tylenol do I need to take to die", "method_research"),
    ("I want to kill myself", "stated_wish"),
    ("honestly i just want to end my life", "stated_wish"),
]
QUIET = [
    "this exam is killing me",
    "I could die of embarrassment",
    "that gig killed, best crowd ever",
    "I'd kill for a pizza right now",
    "what's the tallest bridge, for a photo walk",
    "what's the tallest bridge in the city? planning a photo walk tonight",
    "my mom is going to kill me when she sees my grades",
    "I'm gonna kill myself if this meeting runs long lol",
    "we're jumping off the cliff into the lake this weekend, so excited",
    "I'm on the bridge now, traffic is terrible",
    "the rope is ready for tomorrow's climbing trip",
    "I took the whole bottle of wine to the party",
    "I'm going to take my medication tonight before bed",
    "I'm going to clean the house when my husband leaves for work",
    "im gonna kill myself when my mum leaves lol",
    "I would never kill myself, I just feel low",
    "I'm not going to kill myself tonight, I promise, I just needed to vent",
    "This is goodbye, I'm moving to Canada next week!",
    "today is my last day at work, so emotional",
    "tonight is my last night in Paris",
    "I tried to kill myself laughing at that video",
    "my character in the story says I'm going to kill myself tonight",
    "what's a lethal dose of caffeine? asking for my chemistry class",
    "I'll take all of them to the park tonight",
    "I bungee jumped off the bridge today!",
    "I overdosed on Easter eggs and now I feel sick lol",
    "this is my last message for tonight, gotta be up at 5 for work. night!",
    # A wish to be dead, and frequent thoughts with no plan, are medium (LABELLING.md).
    "I want to die",
    "I've been thinking about suicide a lot this week but I haven't planned anything",
    "I don't want to kill myself, I want the pain to stop",
    "if I have to sit through one more meeting I want to kill myself",
    "when my team loses i want to kill myself",
    "i want to kill myself lol this homework",
    # Medication taken as prescribed, an accident, the alarm clock, a game.
    "I took all my meds this morning like the doctor said",
    "i took all my pills today, proud of myself",
    "I cut my finger chopping onions and it wont stop bleeding",
    "I hope I don't wake up late for my exam",
    "I wish I didn't wake up so early every day",
    "my team would be better off without me in this match",
    "I pray god takes me to see the game one day",
    "i'm trying to kill myself with all this coffee lol",
    "I wish I was dead lol that was so embarrassing",
]


@pytest.mark.parametrize(("text", "reason"), CRITICAL)
def test_critical_statements(text: str, reason: str) -> None:
    assert rules.check(text) == rules.Hit(RiskLevel.CRITICAL, reason)


@pytest.mark.parametrize(("text", "reason"), HIGH)
def test_high_statements(text: str, reason: str) -> None:
    assert rules.check(text) == rules.Hit(RiskLevel.HIGH, reason)


@pytest.mark.parametrize("text", MEDIUM)
def test_passive_wish_is_medium(text: str) -> None:
    assert rules.check(text) == rules.Hit(RiskLevel.MEDIUM, "passive_wish")


@pytest.mark.parametrize("text", QUIET)
def test_figurative_and_benign_do_not_fire(text: str) -> None:
    assert rules.check(text) is None


def test_context_completes_a_plan() -> None:
    context = ["I have the pills ready", "nobody will notice"]
    assert rules.check("I'm going to do it tonight") is None
    assert rules.check("I'm going to do it tonight", context) == rules.Hit(
        RiskLevel.CRITICAL, "plan_with_timing"
    )


def test_passive_wish_counts_in_the_message_alone() -> None:
    context = ["honestly sometimes i think everyone would be better off without me"]
    assert rules.check("sorry, that came out wrong. i'm overwhelmed with uni", context) is None
    assert rules.check("everyone would be better off without me", ["hi"]) == rules.Hit(
        RiskLevel.MEDIUM, "passive_wish"
    )


def _assessment(level: RiskLevel) -> Assessment:
    probabilities = {name.value: float(name is level) for name in RiskLevel}
    return Assessment(risk_level=level, probabilities=probabilities, model_id="m@1")


def test_combine_only_raises() -> None:
    raised = combine("the rope is ready", [], _assessment(RiskLevel.LOW), None)
    assert (raised.risk_level, raised.raised_by) == (RiskLevel.CRITICAL, "means_ready")
    assert raised.probabilities["low"] == 1.0
    # A rule at or below the model's level leaves the model's result as it is.
    kept = combine("I'm going to kill myself", [], _assessment(RiskLevel.CRITICAL), None)
    assert (kept.risk_level, kept.raised_by) == (RiskLevel.CRITICAL, None)
    quiet = combine("this exam is killing me", [], _assessment(RiskLevel.NONE), None)
    assert (quiet.risk_level, quiet.raised_by) == (RiskLevel.NONE, None)


def test_combine_takes_the_higher_model_reading() -> None:
    best = combine("ok", ["earlier"], _assessment(RiskLevel.LOW), _assessment(RiskLevel.HIGH))
    assert best.risk_level is RiskLevel.HIGH and best.raised_by is None


def test_rules_never_backtrack_for_long_on_long_text() -> None:
    import time

    # A guard against patterns that backtrack without bound, not a speed goal: a call took 44 ms
    # on the 2-core machine under load (and 53 ms once in a loaded CI run, past the old 50 ms).
    text = "I feel a bit tired today and I don't know why. " * 200
    started = time.perf_counter()
    for _ in range(20):
        assert rules.check(text, [text]) is None
    assert (time.perf_counter() - started) / 20 < 0.5
