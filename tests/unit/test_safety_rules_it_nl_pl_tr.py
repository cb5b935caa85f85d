"""The rule layer in Italian, Dutch, Polish and Turkish: a wish or intent to kill oneself stated
outright raises to high, with its timing now or pills already taken to critical; negation,
laughter, figurative speech and a wish to be dead do not."""

from __future__ import annotations

import pytest

from haven.risk import RiskLevel
from models.safety import corpus, rules

C, H = RiskLevel.CRITICAL, RiskLevel.HIGH
RAISED = {
    "it": [
        ("voglio uccidermi, non ce la faccio più", H, "stated_wish"),
        ("mi voglio ammazzare", H, "stated_wish"),
        ("ho deciso di togliermi la vita", H, "stated_intent"),
        ("stanotte mi uccido", C, "plan_with_timing"),
        ("ho preso tutte le pillole", C, "attempt_in_progress"),
    ],
    "nl": [
        ("ik wil zelfmoord plegen", H, "stated_wish"),
        ("ik wil mezelf van kant maken. echt", H, "stated_wish"),
        ("ik ga mezelf van kant maken", H, "stated_intent"),
        ("ik ga vannacht zelfmoord plegen", C, "plan_with_timing"),
        ("ik heb al mijn pillen ingenomen", C, "attempt_in_progress"),
    ],
    "pl": [
        ("naprawdę chcę się zabić", H, "stated_wish"),
        ("mam zamiar odebrać sobie życie, tylko jeszcze nie wiem kiedy", H, "stated_intent"),
        ("dziś w nocy się zabiję", C, "plan_with_timing"),
        ("połknęłam wszystkie tabletki", C, "attempt_in_progress"),
    ],
    "tr": [
        ("kendimi öldürmek istiyorum", H, "stated_wish"),
        ("intihar edeceğim", H, "stated_intent"),
        ("bu gece intihar edeceğim", C, "plan_with_timing"),
        ("b\u00fct\u00fcn ila\u00e7lar\u0131m\u0131 i\u00e7tim", C, "attempt_in_progress"),
    ],
}
QUIET = {
    "it": [
        "non voglio uccidermi, voglio solo dormire",
        "mi ammazzo dalle risate ogni volta",
        "voglio morire",
        "dieci giorni fa ho preso tutte le mie medicine, mi hanno salvata per caso",
    ],
    "nl": [
        "ik wil niet dood, ik wil gewoon rust",
        "ik lag dubbel van het lachen",
        "ik ga vanavond zwemmen in het meer",
    ],
    "pl": [
        "nie chcę się zabić, po prostu jestem zmęczona",
        "zabiję się ze śmiechu",
        "na tych schodach zaraz się zabiję, kto je tak wypastował",
        "chciałabym zniknąć",
    ],
    "tr": [
        "kendimi öldürmek istemiyorum",
        "gülmekten kendimi öldüreceğim",
        "ölmek istiyorum",
    ],
}


@pytest.mark.parametrize(
    ("text", "level", "reason"), [item for items in RAISED.values() for item in items]
)
def test_explicit_statements_in_italian_dutch_polish_and_turkish_raise(
    text: str, level: RiskLevel, reason: str
) -> None:
    assert rules.check(text) == rules.Hit(level, reason)


@pytest.mark.parametrize("text", [t for texts in QUIET.values() for t in texts])
def test_negation_laughter_idioms_and_a_wish_to_be_dead_stay_quiet(text: str) -> None:
    assert rules.check(text) is None


def test_no_written_message_at_none_to_medium_in_these_languages_is_raised() -> None:
    files = {"multilingual_3", "multilingual_5", *(f"multilingual_{n}" for n in range(6, 10))}
    for item in corpus.load_written():
        if item.file in files and item.level <= RiskLevel.MEDIUM.rank:
            assert rules.check(item.text, list(item.context)) is None, item.text
