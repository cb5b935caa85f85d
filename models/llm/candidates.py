"""Best of several sampled replies: which one keeps best to the person.

A small model's single sample often answers the gist loosely, invents someone the person never
mentioned, asks two questions at once, or speaks of a life of its own. Sampling a few replies to
the same prompt in one batch and choosing among them enforces what can be checked on the text
(no invented person, at most one question, no experience of its own, no "I can't help", nothing
the output screen would stop) and then prefers the reply closest in
meaning to what the person just wrote (cosine of MiniLM sentence embeddings). This is the
rerank step of sample-and-rerank decoding; `models.llm.drafts` samples the candidates and
chooses at their first sentence, so only the first sentence waits for the choice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from models.llm.evaluate_metrics import cosines, mentions_third_person
from models.safety.output_screen import unsafe_reply

# Sentence embeddings of texts, one unit vector per row (`MiniLMEncoder.encode`).
Embed = Callable[[list[str]], np.ndarray]
# A context that names one of these has a third person a reply may speak of ("my sister" makes
# "she" fine), which the evaluation's pronoun-only count does not credit.
PERSON_WORDS = frozenset(
    """mother mom mum dad father parent parents sister sisters brother brothers sibling siblings
    friend friends boyfriend girlfriend partner husband wife spouse fiance fiancee ex boss
    manager coworker coworkers colleague colleagues teacher teachers son daughter kid kids child
    children baby family grandma grandmother grandpa grandfather aunt uncle cousin roommate
    neighbour neighbor neighbours neighbors people someone somebody everyone doctor therapist
    classmate classmates team student students customer customers client clients""".split()
)
_WORD = re.compile(r"[a-z']+")
# Haven has no life of its own to tell: "I had the same", "my wife", "it's hard for me too".
_OWN_EXPERIENCE = re.compile(
    r"\b(?:i|we)(?: really| also| just| once)? (?:had|went|used to|lost|felt|do have"
    r"|have been through|was (?:in|once|also|too|there))\b"
    r"|\bmy (?:wife|husband|partner|kids?|children|son|daughter|family|friends?|mother|mom|mum"
    r"|father|dad|sister|brother|boss|job|life)\b"
    r"|\b(?:for me|me) too\b|\bi(?: am|'m) too\b",
    re.IGNORECASE,
)
# A listener that says it cannot help has left the person alone with it.
_REFUSAL = re.compile(
    r"\bi(?:'m| am)? ?(?:unable|not able|can't|cannot|can not) (?:to )?(?:assist|help)\b(?! but)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Candidate:
    index: int  # position among the texts ranked
    text: str
    faults: tuple[str, ...]  # checks the text failed; the fewest faults wins
    relevance: float  # cosine to the person's last message


def faults(text: str, context: Sequence[str]) -> tuple[str, ...]:
    """What is wrong with `text` as a reply, as far as the text alone can tell."""
    found: list[str] = []
    if not text.strip():
        found.append("empty")
    if mentions_third_person(text) and not any(_has_person(turn) for turn in context):
        found.append("invented_person")
    if text.count("?") > 1:
        found.append("several_questions")
    plain = text.replace("\u2019", "'")
    if _OWN_EXPERIENCE.search(plain):
        found.append("own_experience")
    if _REFUSAL.search(plain):
        found.append("refusal")
    if unsafe_reply(text) is not None:
        found.append("screened")
    return tuple(found)


def _has_person(text: str) -> bool:
    return mentions_third_person(text) or not PERSON_WORDS.isdisjoint(_WORD.findall(text.lower()))


class ReplyChooser:
    """Picks the reply to send among candidates for one turn. Blocking: run it off the loop."""

    def __init__(self, embed: Embed) -> None:
        self._embed = embed

    def rank(self, texts: Sequence[str], message: str, context: Sequence[str]) -> list[Candidate]:
        """`texts` scored against the person's last `message` and the conversation's texts
        (`context`, both sides), best first; ties keep the sampling order."""
        if not texts:
            raise ValueError("no candidates to choose from")
        vectors = self._embed([*texts, message])
        relevance = cosines(vectors[:-1], np.repeat(vectors[-1:], len(texts), axis=0))
        scored = [
            Candidate(i, text, faults(text, context), float(score))
            for i, (text, score) in enumerate(zip(texts, relevance, strict=True))
        ]
        order = sorted(
            range(len(scored)), key=lambda i: (len(scored[i].faults), -scored[i].relevance, i)
        )
        return [scored[i] for i in order]
