"""What a generated reply must (and must not) contain at each risk level, and the reviewed
sentences added when it falls short.

- none / low: no crisis resources. A sentence that names a hotline, a crisis service or an
  emergency number is dropped (at low it is replaced, once, by the suggestion to talk to someone
  they trust or a professional, which is what low risk calls for).
- low: the suggestion of someone they trust or a professional, unless this reply or a recent
  one already made it.
- medium: the locale's line, in words that say support exists right now.
- high (only when an operator trusts the generating model there): the line and a direct
  question about safety right now.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from haven.protocol import EmergencyResources
from haven.reviewed_replies import Concern, line_fields, pick

# Services, lines and emergency numbers a crisis response names; phone-number shapes too.
_CRISIS_RESOURCE = re.compile(
    r"\b(?:hotlines?|helplines?|lifelines?|crisis (?:line|text|center|centre|service|team|"
    r"counsel\w*)s?|suicide (?:prevention|hotline|helpline)|samaritans|emergency (?:services|"
    r"room|department|number)|a&e|text (?:home|shout|hello|talk)\b)|"
    # A number ends a sentence ("call 988.") but is not part of a longer one ("1,988", "9.88").
    r"(?<!\d)(?<!\d[,.])(?:911|988|999|112|000|741741|85258|50808|116[ -]?123|13 ?11 ?14)"
    r"(?!\d)(?![,.]\d)|"
    r"\b1[-. ]?800[-. ]?\w{3}[-. ]?\w{4}\b|\(?\b\d{3}\)?[-. ]\d{3}[-. ]\d{4}\b",
    re.IGNORECASE,
)
_SUPPORT_SUGGESTED = re.compile(
    r"\b(?:someone you trust|people you trust|a (?:close )?friend|friends?|family|"
    r"professional|therapist|counsell?or|doctor|gp|psychologist)\b",
    re.IGNORECASE,
)
_SAFETY_QUESTION = re.compile(r"\bsafe(?:ty)?\b[^.!?]*\?", re.IGNORECASE)
# Sentence ends inside growing text: terminal punctuation after a letter or digit (a phone
# number can end a sentence), then whitespace.
_SENTENCE_BREAK = re.compile(r"(?<=[^\W_][.!?\u2026])[\"'\u201d\u2019)]*\s+|\n+")

_SOMEONE_ELSE = re.compile(
    r"\b(?:my|our) (?:best )?(?:friend|brother|sister|son|daughter|mom|mum|mother|dad|father|"
    r"partner|boyfriend|girlfriend|husband|wife|roommate|flatmate|cousin|colleague|coworker|"
    r"classmate|student|child|kid|teen)s?\b|\bsomeone i know\b",
    re.IGNORECASE,
)
_SELF_AT_RISK = re.compile(
    r"\b(?:myself|my (?:own )?life|i(?:'m| am)? (?:going to|gonna|want to|wanna|will|plan to|"
    r"tried to|have tried to) (?:die|kill|end|hurt|overdose|jump)|i(?:'ve| have)? (?:been )?"
    r"(?:saving|bought|stockpil\w*|planning)|i (?:can't|cannot|don't want to) "
    r"(?:go on|live|be here))",
    re.IGNORECASE,
)

_MEDIUM_LINE = (
    "If it ever feels like too much, support is there right now: you can call {hotline} any "
    "time to talk with someone.",
    "You don't have to carry this alone; you can reach someone right now, day or night, by "
    "calling {hotline}, or you can {text_line}.",
    "Thoughts like these are worth talking through, and there are people ready to listen "
    "right now at {hotline}, any time.",
)
_HIGH_LINE = (
    "You can call {hotline} any time to talk with someone trained to help, or {text_line}; "
    "if you are in immediate danger, call {emergency}.",
)
_SAFETY_ASK = "Are you safe right now?"
_LOW_SUGGESTION = (
    "It might help to talk this through with someone you trust, or with a counsellor or "
    "doctor if it keeps weighing on you.",
    "Sharing some of this with a friend, someone in your family or a professional could make "
    "it feel a little lighter.",
)
# When screening left nothing of a reply at none or low.
LISTENING = "I'm here and listening. Would you like to tell me more about what's going on?"


def carries_crisis_resources(text: str) -> bool:
    return bool(_CRISIS_RESOURCE.search(text.replace("\u2019", "'")))


def names_line(text: str, resources: EmergencyResources) -> bool:
    """Whether `text` gives the locale's crisis line (digits spaced or hyphenated any way)."""
    digits = re.sub(r"\D", "", resources.crisis_hotline)
    if not digits:
        return resources.crisis_hotline.lower() in text.lower()
    spaced = r"[\s-]?".join(digits)
    return bool(re.search(rf"(?<!\d){spaced}(?!\d)", text))


def asks_about_safety(text: str) -> bool:
    return bool(_SAFETY_QUESTION.search(text))


def suggests_support(text: str) -> bool:
    return bool(_SUPPORT_SUGGESTED.search(text))


def split_sentences(text: str) -> tuple[list[str], str]:
    """The whole sentences at the start of `text`, each with its trailing whitespace, and the
    unfinished rest."""
    done: list[str] = []
    start = 0
    for match in _SENTENCE_BREAK.finditer(text):
        done.append(text[start : match.end()])
        start = match.end()
    return done, text[start:]


def concern_of(message: str) -> Concern:
    """Whose safety a high-risk message is about. Someone else only when the message names
    another person and says nothing of the writer's own risk: a wrong "someone else" would not
    ask the writer about their own safety, so doubt reads as the writer."""
    if _SOMEONE_ELSE.search(message) and not _SELF_AT_RISK.search(message):
        return Concern.SOMEONE_ELSE
    return Concern.SELF


def medium_line(resources: EmergencyResources, seed: str) -> str:
    return pick(_MEDIUM_LINE, seed).format(**line_fields(resources))


def high_elements(text: str, resources: EmergencyResources) -> list[str]:
    """What a generated high-risk reply lacks of the line and the safety question, in order."""
    missing: list[str] = []
    if not names_line(text, resources):
        missing.append(_HIGH_LINE[0].format(**line_fields(resources)))
    if not asks_about_safety(text):
        missing.append(_SAFETY_ASK)
    return missing


def low_suggestion(seed: str, recent: Sequence[str] = ()) -> str:
    return pick(_LOW_SUGGESTION, seed, recent)
