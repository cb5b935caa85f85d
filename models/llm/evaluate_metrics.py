"""Reply-quality figures for `models.llm.evaluate`: lengths, diversity, relevance, invented people.

All pure functions of the texts, except relevance, which takes the MiniLM embeddings.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence

import numpy as np

# A reply "speaks of a third person" when it uses one of these and the context used none: the
# issue's list (he/she/they/him/her/his/their) with the other forms of the same pronouns.
THIRD_PERSON = frozenset(
    {"he", "she", "they", "him", "her", "his", "their", "them", "hers", "himself", "herself"}
)
_WORD = re.compile(r"[a-z']+")


def words(text: str) -> int:
    return len(text.split())


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def mentions_third_person(text: str) -> bool:
    return any(token in THIRD_PERSON for token in _tokens(text))


def invents_person(reply: str, context: Sequence[str]) -> bool:
    """The reply speaks of a third person although nobody in the context did."""
    return mentions_third_person(reply) and not any(mentions_third_person(t) for t in context)


def distinct_n(replies: Sequence[str], n: int) -> float:
    """Unique n-grams over all n-grams of all replies (corpus level), lower-cased words."""
    grams: list[tuple[str, ...]] = []
    for reply in replies:
        tokens = _tokens(reply)
        grams.extend(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return len(set(grams)) / len(grams) if grams else 0.0


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two [n, d] arrays (unit vectors from MiniLM, normalised again anyway)."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.asarray((a * b).sum(axis=1) / np.maximum(norms, 1e-12))


def median_words(replies: Sequence[str]) -> float:
    return float(statistics.median(words(r) for r in replies)) if replies else 0.0


def mean(values: Sequence[float]) -> float | None:
    return float(statistics.fmean(values)) if values else None
