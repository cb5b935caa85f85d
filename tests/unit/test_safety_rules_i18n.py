"""The rule layer in the other trained languages: in Spanish, French, German and Portuguese
explicit plans, means, timing and attempts raise; in Italian, Dutch, Polish and Turkish a wish or
intent to kill oneself stated outright raises to high, with its timing now or pills already taken
to critical. Negation, laughter, each language's figurative speech and a wish to be dead do not."""

from __future__ import annotations

import pytest

from haven.risk import RiskLevel
from models.safety import corpus, rules

C, H = RiskLevel.CRITICAL, RiskLevel.HIGH
RAISED = {
    "es": [
        ("Voy a tomarme todas las pastillas esta noche", C, "plan_with_timing"),
        ("Me voy a matar esta noche, ya no aguanto más", C, "plan_with_timing"),
        ("Esta noche me mato.", C, "plan_with_timing"),
        ("Me tomé todas las pastillas del bote", C, "attempt_in_progress"),
        ("Estoy en el puente y voy a saltar", C, "at_location"),
        ("La soga ya está lista", C, "means_ready"),
        ("Escribí mi carta de despedida", C, "final_goodbye"),
        ("He decidido suicidarme", H, "stated_intent"),
        ("Quiero matarme, así de claro", H, "stated_wish"),
        ("me quiero suicidar", H, "stated_wish"),
        ("Intenté matarme la semana pasada", H, "recent_attempt"),
    ],
    "fr": [
        ("Je vais me tuer ce soir", C, "plan_with_timing"),
        ("je vais en finir cette nuit", C, "plan_with_timing"),
        ("J'ai pris toutes mes pilules", C, "attempt_in_progress"),
        ("Je suis sur le pont et je vais sauter", C, "at_location"),
        ("La corde est prête", C, "means_ready"),
        ("J'ai écrit ma lettre d'adieu", C, "final_goodbye"),
        ("Je vais me suicider", H, "stated_intent"),
        ("Je veux me tuer", H, "stated_wish"),
        ("j'ai envie de me suicider", H, "stated_wish"),
        ("J'ai essayé de me suicider le mois dernier", H, "recent_attempt"),
    ],
    "de": [
        ("Ich werde mich heute Nacht umbringen", C, "plan_with_timing"),
        ("Ich bringe mich heute um", C, "plan_with_timing"),
        ("Ich hab einen Strick gekauft und heute Nacht mache ich Schluss", C, "plan_with_timing"),
        ("Ich habe alle meine Tabletten genommen", C, "attempt_in_progress"),
        ("Ich stehe auf der Brücke und werde springen", C, "at_location"),
        ("Das Seil ist bereit", C, "means_ready"),
        ("Der Strick ist schon fertig", C, "means_ready"),
        ("Ich hab mir einen Strick gekauft, um mich aufzuhängen", H, "means_acquired"),
        ("Ich habe eine Waffe besorgt, um mich zu erschießen", H, "means_acquired"),
        ("Ich habe meinen Abschiedsbrief geschrieben", C, "final_goodbye"),
        ("ich werde mich umbringen", H, "stated_intent"),
        ("ich bring mich um, nicht heute, aber bald", H, "stated_intent"),
        ("Ich will mich umbringen. Das ist kein Spaß", H, "stated_wish"),
        ("ich möchte mir das Leben nehmen", H, "stated_wish"),
        ("umbringen möchte ich mich, jeden Tag mehr", H, "stated_wish"),
        ("manchmal will ich mich einfach umbringen", H, "stated_wish"),
        ("Ich habe versucht, mich umzubringen", H, "recent_attempt"),
    ],
    "pt": [
        ("Vou me matar hoje à noite", C, "plan_with_timing"),
        ("vou matar-me agora", C, "plan_with_timing"),
        ("Tomei todos os meus comprimidos", C, "attempt_in_progress"),
        ("Estou na ponte e vou pular", C, "at_location"),
        ("A corda já está pronta", C, "means_ready"),
        ("Escrevi minha carta de despedida", C, "final_goodbye"),
        ("Vou me matar", H, "stated_intent"),
        ("vou me matar, não hoje, mas vou", H, "stated_intent"),
        ("Eu quero me matar", H, "stated_wish"),
        ("tenho vontade de me matar", H, "stated_wish"),
        ("Tentei me matar semana passada", H, "recent_attempt"),
    ],
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
    "es": [
        "No voy a matarme esta noche, solo necesitaba desahogarme",
        "me voy a matar de risa con este video jajaja",
        "si suspendo me voy a matar",
        "este calor me está matando",
        "me muero de vergüenza",
        "esta noche me voy a tirar a la piscina del hotel",
        "estoy en el puente sacando fotos del atardecer",
        "me tomé todas las vitaminas de la mañana",
        "intenté suicidarme hace años, hoy estoy bien",
        "quiero matarme de risa jajaja",
        "si tengo que escuchar esa canción otra vez quiero matarme",
        "No quiero matarme, solo estoy cansada",
        "quiero morir",
    ],
    "fr": [
        "je ne vais pas me tuer ce soir, promis",
        "ce boulot me tue",
        "je vais me tuer à la tâche ce soir pour finir ce dossier",
        "je suis sur le pont du bateau, la vue est magnifique",
        "j'ai pris toutes mes affaires pour le week-end",
        "je vais me tuer de rire mdr",
        "je ne veux pas me tuer",
        "quand mon équipe perd je veux me tuer",
        "je veux mourir",
    ],
    "de": [
        "Ich werde mich heute um die Kinder kümmern",
        "ich werde mich nicht umbringen, keine Sorge",
        "Ich werde heute ins Schwimmbad springen",
        "ich bring mich um vor lachen",
        "Ich werde heute von der Arbeit nach Hause gehen",
        "die Arbeit bringt mich noch um",
        "ich stehe auf der Brücke und mache Fotos",
        "Ich habe ein Seil für die Schaukel im Garten gekauft",
        "Ich hab mir ein Seil gekauft, um mich beim Klettern zu sichern",
        "Der Strick vom Turnbeutel ist gerissen",
        "ich will mich nicht umbringen",
        "wenn der Lehrer noch einmal singt, will ich mich umbringen",
        "heute will ich mich nicht umbringen, nur schlafen",
        "Ich hab Tabletten gekauft und heute mache ich früher Schluss mit der Arbeit",
        "ich habe ein Seil für die Schaukel gekauft, heute ist Schluss mit dem Aufbau",
        "ich will sterben",
    ],
    "pt": [
        "vou me matar de estudar hoje kkkk",
        "Não vou me matar hoje",
        "esse calor está me matando",
        "tomei todos os meus remédios da pressão como o médico mandou, tudo certo",
        "estou na ponte tirando foto da vista",
        "quando o meu time perde quero me matar",
        "quero me matar de rir kkkk",
        "quero morrer",
    ],
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
    ("text", "level", "reason"),
    [item for items in RAISED.values() for item in items],
)
def test_explicit_statements_in_other_languages_raise(
    text: str, level: RiskLevel, reason: str
) -> None:
    assert rules.check(text) == rules.Hit(level, reason)


@pytest.mark.parametrize("text", [t for texts in QUIET.values() for t in texts])
def test_negation_laughter_and_idioms_in_other_languages_stay_quiet(text: str) -> None:
    assert rules.check(text) is None


def test_every_language_has_cases_for_each_signal() -> None:
    for language in ("es", "fr", "de", "pt"):
        reasons = {reason for _, _, reason in RAISED[language]}
        assert {"plan_with_timing", "attempt_in_progress", "means_ready", "at_location"} <= reasons
        assert len(QUIET[language]) >= 5


def test_accents_do_not_matter() -> None:
    assert rules.check("la soga ya esta lista") == rules.check("La soga ya está lista")
    assert rules.check("ich stehe auf der brucke und werde springen") is not None


def test_context_in_another_language_completes_a_plan() -> None:
    context = ["tengo las pastillas guardadas", "nadie se va a dar cuenta"]
    assert rules.check("voy a tomarme todas las pastillas") is None
    assert rules.check("voy a tomarme todas las pastillas esta noche", context) is not None


def test_no_written_multilingual_message_at_none_to_medium_is_raised() -> None:
    files = {"multilingual_3", "multilingual_5", *(f"multilingual_{n}" for n in range(6, 10))}
    for item in corpus.load_written():
        if item.file in files and item.level <= RiskLevel.MEDIUM.rank:
            assert rules.check(item.text, list(item.context)) is None, item.text
