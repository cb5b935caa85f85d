"""Best of several sampled replies: sample a few, send the one that keeps best to the person.

A small model's single sample often answers the gist loosely, invents someone the person never
mentioned, asks two questions at once, or speaks of a life of its own. Sampling a few replies to
the same prompt in one batch and choosing among them enforces what can be checked on the text
(no invented person, at most one question, no experience of its own, no "I can't help", nothing
the output screen would stop) and then prefers the reply closest in
meaning to what the person just wrote (cosine of MiniLM sentence embeddings). This is the
rerank step of sample-and-rerank decoding; it costs the first word (the reply is sent once all
candidates are complete) and batch places, so extra candidates only take places that are free.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass

import numpy as np

from models.llm.admission import Admission
from models.llm.backend import ChatBackend, GenerationParams
from models.llm.evaluate_metrics import cosines, mentions_third_person
from models.llm.reply_shape import ReplyShape
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
    r"\bi(?:'m| am)? ?(?:unable|not able|can't|cannot|can not) (?:to )?(?:assist|help)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Candidate:
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
    if _OWN_EXPERIENCE.search(text.replace("\u2019", "'")):
        found.append("own_experience")
    if _REFUSAL.search(text.replace("\u2019", "'")):
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
            Candidate(text, faults(text, context), float(score))
            for text, score in zip(texts, relevance, strict=True)
        ]
        order = sorted(
            range(len(scored)), key=lambda i: (len(scored[i].faults), -scored[i].relevance, i)
        )
        return [scored[i] for i in order]


async def sample_replies(
    backend: ChatBackend,
    messages: Sequence[dict[str, str]],
    params: GenerationParams,
    admissions: Sequence[Admission],
    *,
    cache_key: str | None,
    max_sentences: int,
) -> list[str]:
    """One whole reply per admission, sampled together (so they share the model's batch).

    The first keeps the conversation's prompt state under `cache_key`; the others differ only
    in their seed. Cancelling this, or a failure of one, stops every one of them; the caller
    releases the admissions (a stream that never started has not released its own).
    """

    def seeded(index: int) -> GenerationParams:
        if params.seed is None or index == 0:
            return params
        return params.model_copy(update={"seed": params.seed + index})

    streams = [
        backend.stream(messages, seeded(i), admission, cache_key=cache_key if i == 0 else None)
        for i, admission in enumerate(admissions)
    ]
    tasks = [asyncio.create_task(_whole(stream, max_sentences)) for stream in streams]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        # One failed or the caller went away: stop the rest before their places are given back.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _whole(stream: AsyncGenerator[str, None], max_sentences: int) -> str:
    shape = ReplyShape(max_sentences) if max_sentences > 0 else None
    text = ""
    async with aclosing(stream) as pieces:
        async for delta in pieces:
            if shape is None:
                text += delta
                continue
            piece = shape.add(delta)
            text += piece.send
            if piece.stop:
                return text.strip()
    if shape is not None:
        text += shape.finish()
    return text.strip()
