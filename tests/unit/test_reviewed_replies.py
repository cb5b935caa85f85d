"""Reviewed replies at medium, high and critical risk: chosen deterministically, not repeated
across a conversation, and each carries what its level requires in every locale."""

from __future__ import annotations

import pytest

from haven.crisis_resources import SUPPORTED_LOCALES, resources_for
from haven.reply_elements import asks_about_safety, concern_of, names_line
from haven.reviewed_replies import Concern, choose, variants
from haven.risk import RiskLevel
from haven.settings import Settings
from models.safety.output_screen import unsafe_reply

US = resources_for("US", Settings())
REVIEWED_LEVELS = (RiskLevel.HIGH, RiskLevel.CRITICAL)


@pytest.mark.parametrize("level", [RiskLevel.MEDIUM, *REVIEWED_LEVELS])
def test_same_seed_gives_the_same_reply(level: RiskLevel) -> None:
    first = choose(level, US, seed="session-1:message-7")
    assert choose(level, US, seed="session-1:message-7") == first


def test_seeds_spread_over_every_variant() -> None:
    seen = {choose(RiskLevel.HIGH, US, seed=f"s:{n}").text for n in range(60)}
    assert seen == {v.text for v in variants(RiskLevel.HIGH, US)}


@pytest.mark.parametrize("level", [RiskLevel.MEDIUM, RiskLevel.HIGH])
def test_a_conversation_at_risk_never_repeats_a_reply_word_for_word(level: RiskLevel) -> None:
    recent: list[str] = []
    for turn in range(len(variants(level, US))):
        reply = choose(level, US, seed=f"session-1:message-{turn}", recent=recent)
        assert reply.text not in recent
        recent.append(reply.text)


def test_once_every_variant_was_used_the_least_recent_comes_back() -> None:
    used = [v.text for v in variants(RiskLevel.CRITICAL, US)]
    assert choose(RiskLevel.CRITICAL, US, seed="s:1", recent=used).text == used[0]


def test_a_long_conversation_never_gets_the_same_reply_twice_in_a_row() -> None:
    recent: list[str] = []
    for turn in range(12):
        reply = choose(RiskLevel.HIGH, US, seed=f"session-2:message-{turn}", recent=recent[-6:])
        assert not recent or reply.text != recent[-1]
        recent.append(reply.text)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("level", REVIEWED_LEVELS)
@pytest.mark.parametrize("concern", list(Concern))
def test_every_reviewed_reply_names_the_line_asks_about_safety_and_passes_the_strict_screen(
    locale: str, level: RiskLevel, concern: Concern
) -> None:
    resources = resources_for(locale, Settings())
    for reply in variants(level, resources, concern):
        assert names_line(reply.text, resources), reply.text
        assert asks_about_safety(reply.text), reply.text
        assert unsafe_reply(reply.text, at_risk=True) is None, reply.text
        assert "{" not in reply.text  # every placeholder filled


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_critical_replies_give_the_emergency_number(locale: str) -> None:
    resources = resources_for(locale, Settings())
    assert resources.emergency_number
    for reply in variants(RiskLevel.CRITICAL, resources):
        assert resources.emergency_number in reply.text, reply.text
        assert reply.intent == "crisis_support"


def test_high_replies_for_the_person_give_one_safety_planning_step() -> None:
    step_words = ("someone you trust", "distance", "moving it away", "be with you")
    for reply in variants(RiskLevel.HIGH, US):
        assert reply.intent == "safety_check_in"
        assert any(word in reply.text for word in step_words), reply.text


def test_reviewed_replies_are_streamed_sentence_by_sentence() -> None:
    for reply in variants(RiskLevel.HIGH, US):
        assert len(reply.sentences) >= 3
        assert all(s.rstrip()[-1] in ".?!" for s in reply.sentences)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("concern", list(Concern))
def test_every_medium_reply_validates_asks_once_how_they_are_and_says_support_is_there_now(
    locale: str, concern: Concern
) -> None:
    resources = resources_for(locale, Settings())
    for reply in variants(RiskLevel.MEDIUM, resources, concern):
        assert reply.intent == "gentle_check_in"
        assert names_line(reply.text, resources) and "right now" in reply.text, reply.text
        assert reply.text.count("?") == 1, reply.text
        # Nothing a generated reply at this level may not say either.
        assert unsafe_reply(reply.text, at_risk=True, distressed=True) is None, reply.text
        assert "{" not in reply.text


def test_a_medium_reply_to_the_person_does_not_send_them_to_emergency_services() -> None:
    for reply in variants(RiskLevel.MEDIUM, US, Concern.SELF):
        assert "911" not in reply.text and "emergency" not in reply.text.lower(), reply.text


@pytest.mark.parametrize("level", [RiskLevel.NONE, RiskLevel.LOW])
def test_levels_below_medium_have_no_reviewed_reply(level: RiskLevel) -> None:
    with pytest.raises(ValueError, match="generated"):
        variants(level, US)


@pytest.mark.parametrize(
    ("message", "concern"),
    [
        ("my brother just texted me goodbye and won't answer his phone", Concern.SOMEONE_ELSE),
        ("my friend says she has pills saved up", Concern.SOMEONE_ELSE),
        ("I want to kill myself, my mom would be better off", Concern.SELF),
        ("I've been saving my pills since my husband left", Concern.SELF),
        ("I'm going to end it, I just don't know when", Concern.SELF),
    ],
)
def test_someone_else_only_when_the_writer_says_nothing_of_their_own_risk(
    message: str, concern: Concern
) -> None:
    assert concern_of(message) is concern


def test_trusting_the_local_model_at_high_risk_is_refused() -> None:
    from pydantic import ValidationError

    from deployments.generator import GeneratorOptions

    with pytest.raises(ValidationError, match="trusted_at_high"):
        GeneratorOptions(trusted_at_high=True)
    remote = {"backend": "openai", "openai": {"base_url": "http://llm:8000/v1", "model": "m"}}
    assert GeneratorOptions.model_validate(remote | {"trusted_at_high": True}).trusted_at_high
    assert not GeneratorOptions.model_validate(remote).trusted_at_high


def test_trusting_the_local_model_at_medium_risk_is_refused_and_trust_at_high_includes_it() -> None:
    from pydantic import ValidationError

    from deployments.app import AppArgs, app_settings
    from deployments.generator import GeneratorOptions

    with pytest.raises(ValidationError, match="trusted_at_medium"):
        GeneratorOptions(trusted_at_medium=True)
    remote = {"backend": "openai", "openai": {"base_url": "http://llm:8000/v1", "model": "m"}}

    def trust(**options: bool) -> tuple[bool, bool]:
        settings = app_settings(AppArgs.model_validate({"generator": remote | options}))
        return settings.generated_replies_at_medium, settings.generated_replies_at_high

    assert trust() == (False, False)
    assert trust(trusted_at_medium=True) == (True, False)
    assert trust(trusted_at_high=True) == (True, True)
