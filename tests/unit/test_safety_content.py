"""Out-of-distribution is not danger: content-free messages and languages the model never saw."""

from __future__ import annotations

import pytest

from haven.risk import Assessment, RiskLevel
from models.safety import content, language
from models.safety.pipeline import combine

CONTENT_FREE = [
    "ok",
    "test",
    "socket",
    "42",
    "12345",
    "🙂",
    "🙂🙂🙂",
    "?!",
    "",
    "   ",
    "ok thanks",
    "lol",
    "hello",
    "first message",
    "你好",
    "Straße",
]
NOT_CONTENT_FREE = [
    "help",
    "goodbye",
    "die",
    "pills",
    "🔪",
    "adiós",
    "I'm going to kill myself",
    "I would like to get back into running.",
    "first message before the crash",
    "今天晚上我要自杀",
]


@pytest.mark.parametrize("text", CONTENT_FREE)
def test_short_and_empty_messages_are_content_free(text: str) -> None:
    assert content.content_free(text)


@pytest.mark.parametrize("text", NOT_CONTENT_FREE)
def test_risk_words_and_real_sentences_are_not_content_free(text: str) -> None:
    assert not content.content_free(text)


def test_the_limits_are_words_and_characters() -> None:
    assert content.content_free("two words")
    assert not content.content_free("now three words")
    assert not content.content_free("a" * 20 + " " + "b" * 20)  # two words, 41 characters


def _assessment(level: RiskLevel) -> Assessment:
    probabilities = {name.value: float(name is level) for name in RiskLevel}
    return Assessment(risk_level=level, probabilities=probabilities, model_id="m@1")


@pytest.mark.parametrize("text", ["socket", "ok", "test", "7", "🙂"])
def test_content_free_message_alone_is_never_above_low(text: str) -> None:
    result = combine(text, [], _assessment(RiskLevel.CRITICAL), None)
    assert result.risk_level is RiskLevel.LOW
    # The model's own probabilities stay, for the audit trail.
    assert result.probabilities["critical"] == 1.0


def test_context_still_raises_a_content_free_message() -> None:
    context = ["I have the pills ready and nobody will notice"]
    result = combine("ok", context, _assessment(RiskLevel.NONE), _assessment(RiskLevel.CRITICAL))
    assert result.risk_level is RiskLevel.CRITICAL


def test_content_free_below_the_ceiling_is_left_alone() -> None:
    assert combine("ok", [], _assessment(RiskLevel.NONE), None).risk_level is RiskLevel.NONE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I feel anxious about my exam tomorrow", "en"),
        ("Me siento muy sola desde que me mudé de ciudad", "es"),
        ("J'en peux plus de cette colocation, je suis épuisée", "fr"),
        ("Ich fühle mich seit dem Umzug so allein", "de"),
        ("Estou muito cansada de tudo ultimamente", "pt"),
        ("ok", language.UNDETERMINED),
        ("gracias", language.UNDETERMINED),
    ],
)
def test_language_is_detected_or_left_undetermined(text: str, expected: str) -> None:
    assert language.detect(text).language == expected


@pytest.mark.parametrize(
    ("text", "route"),
    [
        ("I feel anxious about my exam tomorrow", language.Route.ENGLISH),
        ("ok", language.Route.ENGLISH),
        ("Me siento muy sola desde que me mudé de ciudad", language.Route.TRAINED),
        ("Я приму все таблетки сегодня ночью", language.Route.UNTRAINED),
        ("Привет, как дела? Сегодня хорошая погода", language.Route.UNTRAINED),
        ("今天晚上我要自杀", language.Route.UNTRAINED),
    ],
)
def test_routes(text: str, route: language.Route) -> None:
    assert language.route(text) is route


@pytest.mark.parametrize("model_level", list(RiskLevel))
def test_untrained_language_is_read_as_medium_whatever_the_model_says(
    model_level: RiskLevel,
) -> None:
    text = "Привет, как дела? Сегодня хорошая погода"
    joined = _assessment(RiskLevel.CRITICAL)
    result = combine(text, ["earlier"], _assessment(model_level), joined)
    assert result.risk_level is RiskLevel.MEDIUM
    assert result.raised_by is None


def test_rules_still_raise_in_an_untrained_language_path() -> None:
    # The message is routed untrained but quotes an explicit English statement: the rules read it.
    text = "Я больше не могу, простите меня все. the rope is ready"
    assert language.route(text) is language.Route.UNTRAINED
    result = combine(text, [], _assessment(RiskLevel.NONE), None)
    assert result.risk_level is RiskLevel.CRITICAL and result.raised_by == "means_ready"


def test_detection_of_long_text_reads_only_its_start() -> None:
    text = "Ich fühle mich seit dem Umzug so allein. " * 500
    assert language.detect(text).language == "de"
