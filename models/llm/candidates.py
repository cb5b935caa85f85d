"""Best of several sampled replies: which one keeps best to the person.

A small model's single sample often answers the gist loosely, invents someone the person never
mentioned ("she", "your boss"), asks two questions at once, or speaks of a life of its own ("I've
felt that way too"). Sampling a few replies to the same prompt in one batch and choosing among
them enforces what can be checked on the text (no invented person, at most one question, no
experience of its own, no "I can't help", no misreading of what the person said
(`models.llm.misreadings`), nothing the output screen would stop) and then prefers
the reply closest in meaning to what the person just wrote (cosine of MiniLM sentence
embeddings). This is the rerank step of sample-and-rerank decoding; `models.llm.drafts` samples
the candidates and chooses at their first sentence, so only the first sentence waits for the
choice; `models.llm.later_sentences` holds each later sentence of the chosen one to the same
person and question checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from haven.risk import RiskLevel
from models.llm.evaluate_metrics import cosines, mentions_third_person
from models.llm.misreadings import misreadings
from models.safety.output_screen import unsafe_reply

# Sentence embeddings of texts, one unit vector per row (`MiniLMEncoder.encode`).
Embed = Callable[[list[str]], np.ndarray]
# People a reply may speak of as "your friend", "her boss": each group is one person as the
# person may name them (mom/mother/mum; partner/boyfriend/husband...). Words for parents also
# sit in each parent's group, so "my parents" makes "your mom" known and "my dad" makes "your
# parents" known. Synonyms are generous on purpose: wrongly calling a reply's person invented
# ranks a fitting draft down, which costs more than letting a near miss through.
_KIN: tuple[frozenset[str], ...] = tuple(
    frozenset(group.split())
    for group in (
        "mother mom mum mommy mummy mama stepmother stepmom stepmum parent parents",
        "father dad daddy papa stepfather stepdad parent parents",
        "sister sisters brother brothers sibling siblings stepsister stepbrother",
        "son sons daughter daughters kid kids child children baby babies toddler teen teenager",
        "grandma grandmother grandpa grandfather granny grandparent grandparents nan nana",
        "aunt aunts auntie uncle uncles cousin cousins niece nephew relative relatives",
        "partner boyfriend girlfriend husband wife spouse fiance fiancee ex",
    )
)
PERSON_GROUPS: tuple[frozenset[str], ...] = _KIN + tuple(
    frozenset(group.split())
    for group in (
        "friend friends bestie buddy",
        "boss manager supervisor employer",
        "coworker coworkers colleague colleagues workmate workmates teammate teammates",
        "roommate roommates flatmate flatmates housemate housemates",
        "teacher teachers professor tutor lecturer",
        "classmate classmates",
        "neighbour neighbor neighbours neighbors",
        "therapist therapists counsellor counselor psychologist psychiatrist therapy counselling"
        " counseling",
    )
)
# "Your family" is known once any relative is: the family is the group they belong to.
_RELATIVES = frozenset().union(*_KIN) | {"family", "families"}
# The words that make each person noun known: the groups it belongs to.
_KNOWN_BY: dict[str, frozenset[str]] = {"family": _RELATIVES, "families": _RELATIVES}
for _group in PERSON_GROUPS:
    for _noun in _group:
        _KNOWN_BY[_noun] = _KNOWN_BY.get(_noun, frozenset()) | _group
# A context that names one of these has a third person a reply may speak of ("my sister" makes
# "she" fine), which the evaluation's pronoun-only count does not credit. Therapy and
# counselling make "your therapist" known but are not a person a pronoun could stand for.
PERSON_WORDS = (frozenset(_KNOWN_BY) - {"therapy", "counselling", "counseling"}) | frozenset(
    """people someone somebody everyone doctor team student students customer customers client
    clients""".split()
)
# Letters only, so that "my mom's" names a mom.
_WORD = re.compile(r"[a-z]+")
# "your friend", "his mom", "their boss", "your older sister": a reply that gives the person a
# friend, a parent, a boss the conversation never named speaks of a life it made up, just as an
# unexplained "she" does, and the person has to correct it or feel unheard. The noun is the
# first after the possessive and at most two modifiers. Not a person the reply invents:
# - the way to one, as the reviewed low-risk suggestion words it ("someone in your family",
#   "one of your friends"): it points the person to their circle, not to somebody in it;
# - a doctor or GP ("your doctor", "your family doctor"): anyone can see one, and "talk to your
#   doctor" is the professional help support should point to; a therapist or counsellor of
#   their own is another matter, as it assumes they are in therapy;
# - "a friend", "someone you trust", "a counsellor": no possessive, nobody assumed.
_PERSON_NOUNS = "|".join(sorted(_KNOWN_BY, key=lambda noun: (-len(noun), noun)))
_POSSESSED_PERSON = re.compile(
    r"(?P<way>\b(?:someone|somebody|anyone|anybody|people|one|members?|those|whoever)"
    r" (?:in|of|among|from) )?"
    r"\b(?:your|his|her|their) (?:(?:own|best|close|closest|old|older|younger|little|big|new"
    rf"|current|former|step)[ -]){{0,2}}(?P<noun>{_PERSON_NOUNS})\b"
    r"(?! (?:doctor|gp|physician)\b)",
    re.IGNORECASE,
)
# Haven has no life of its own to tell: "I had the same", "my wife", "it's hard for me too",
# "I've been feeling that way too", "same here", "I know exactly how that feels". A feeling
# claimed needs "I" or "we" as its subject, so "you've been feeling that way" and "many people
# feel the same way" stay reflections of the person's feeling; and "I'd feel the same" or
# "anyone would feel that way" stay the validation they are, as a conditional claims nothing
# that happened.
_I_FEEL = (
    r"\b(?:i|we)\b(?:'ve|'m)?(?: (?:have|am|do|did|also|often|sometimes|really|truly|totally"
    r"|honestly|definitely|still|even|been|used to)){0,4}"
)
_OWN_EXPERIENCE = re.compile(
    r"\b(?:i(?:'ve| have)?|we)(?: really| also| just| once)? (?:had|went|used to|lost|felt"
    r"|do have|have been through|was (?:in|once|also|too|there))\b"
    r"|\b(?:i|we)(?:'ve| have) been (?:through|there)\b(?! for)"
    rf"|{_I_FEEL} (?:feel|felt|feeling|get|got|getting)"
    r" (?:(?:that|this) way(?! of)|the same|similarly"
    r"|like (?:that|this)(?=[.!,;]|$| too| before| sometimes| at times| myself))"
    rf"|{_I_FEEL} (?:feel|felt|feeling) (?:that|this|it) (?:too|as well|myself)\b(?! much| many)"
    r"|\bmy (?:wife|husband|partner|kids?|children|son|daughter|family|friends?|mother|mom|mum"
    r"|father|dad|sister|brother|boss|job|life)\b"
    r"|\b(?:for me|me) too\b|\bi(?: am|'m) too\b|\bme neither\b|\bsame (?:here|for me|with me)\b"
    r"|\b(?:so|neither|nor) (?:do|did|have) i\b"
    r"|\bi know (?:exactly |just )?how (?:that|it|this|you) feels?\b"
    r"|\bi know (?:the|that) feeling\b",
    re.IGNORECASE,
)
# A listener that says it cannot help has left the person alone with it.
_REFUSAL = re.compile(
    r"\bi(?:'m| am)? ?(?:unable|not able|can't|cannot|can not) (?:to )?(?:assist|help)\b(?! but)"
    r"|\bi (?:don't|do not) have the (?:ability|capability|capacity)\b"
    r"|\bi(?:'m| am) not (?:equipped|allowed|able) to\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Candidate:
    index: int  # position among the texts ranked
    text: str
    faults: tuple[str, ...]  # checks the text failed; the fewest faults wins
    relevance: float  # cosine to the person's last message


def faults(
    text: str, context: Sequence[str], *, level: RiskLevel = RiskLevel.NONE
) -> tuple[str, ...]:
    """What is wrong with `text` as a reply, as far as the text alone can tell; `level`: the
    person's message's risk level (from `low` good news is a misreading, from `medium` so is
    agreeing: `models.llm.misreadings`, `unsafe_reply`)."""
    found: list[str] = []
    if not text.strip():
        found.append("empty")
    if names_unmentioned_person(text, context):
        found.append("invented_person")
    if several_questions(text):
        found.append("several_questions")
    plain = text.replace("\u2019", "'")
    if _OWN_EXPERIENCE.search(plain):
        found.append("own_experience")
    if _REFUSAL.search(plain):
        found.append("refusal")
    found.extend(misreadings(plain, context, level=level))
    if unsafe_reply(text, distressed=level.at_least(RiskLevel.MEDIUM)) is not None:
        found.append("screened")
    return tuple(found)


def several_questions(text: str) -> bool:
    """Two questions at once leave the person choosing which to answer."""
    return text.count("?") > 1


def names_unmentioned_person(text: str, context: Sequence[str]) -> bool:
    """A "she" when nobody in the conversation is someone, or a "your boss" when nobody in it
    is that person (by any of the words `PERSON_GROUPS` gives them). Also checks each later
    sentence of the chosen reply (`models.llm.later_sentences`)."""
    said = {word for turn in context for word in _WORD.findall(turn.lower())}
    if mentions_third_person(text) and not (
        any(mentions_third_person(turn) for turn in context) or not PERSON_WORDS.isdisjoint(said)
    ):
        return True
    return any(
        match["way"] is None and _KNOWN_BY[match["noun"].lower()].isdisjoint(said)
        for match in _POSSESSED_PERSON.finditer(text)
    )


class ReplyChooser:
    """Picks the reply to send among candidates for one turn. Blocking: run it off the loop."""

    def __init__(self, embed: Embed) -> None:
        self._embed = embed

    def rank(
        self,
        texts: Sequence[str],
        message: str,
        context: Sequence[str],
        *,
        level: RiskLevel = RiskLevel.NONE,
    ) -> list[Candidate]:
        """`texts` scored against the person's last `message` and the conversation's texts
        (`context`, both sides), best first; ties keep the sampling order. `level`: the
        message's risk level."""
        if not texts:
            raise ValueError("no candidates to choose from")
        vectors = self._embed([*texts, message])
        relevance = cosines(vectors[:-1], np.repeat(vectors[-1:], len(texts), axis=0))
        scored = [
            Candidate(i, text, faults(text, context, level=level), float(score))
            for i, (text, score) in enumerate(zip(texts, relevance, strict=True))
        ]
        order = sorted(
            range(len(scored)), key=lambda i: (len(scored[i].faults), -scored[i].relevance, i)
        )
        return [scored[i] for i in order]
