"""Hashed word and character n-gram features of a message.

The sentence encoder was trained on English; these features let the head learn words it reads
poorly (other languages, slang, misspellings such as "tonite" or "evry1") from the written
corpus. Hashing into a fixed number of buckets keeps the head small and needs no vocabulary file;
crc32 is stable across processes and machines, unlike Python's salted `hash`.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np

BUCKETS = 1 << 15
CHAR_SIZES = (3, 4, 5)
# Long pastes add nothing the first part of a message does not already say; the cap bounds cost.
MAX_CHARS = 2000
_WORD = re.compile(r"\w+", re.UNICODE)


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS]).lower().replace("\u2019", "'")
    return text.encode("utf-8", "replace").decode("utf-8")


def grams(text: str) -> Counter[str]:
    """Words, word pairs and the character n-grams of each space-padded word."""
    words = _WORD.findall(_normalise(text))
    counts: Counter[str] = Counter(f"w:{w}" for w in words)
    counts.update(f"b:{a} {b}" for a, b in itertools.pairwise(words))
    for word in words:
        padded = f" {word} "
        for n in CHAR_SIZES:
            counts.update(padded[i : i + n] for i in range(len(padded) - n + 1))
    return counts


def featurise(text: str, buckets: int = BUCKETS) -> tuple[np.ndarray, np.ndarray]:
    """Bucket indices and L2-normalised log-count weights of one text's n-grams."""
    counts: Counter[int] = Counter()
    for gram, count in grams(text).items():
        counts[zlib.crc32(gram.encode("utf-8")) % buckets] += count
    if not counts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    index = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
    values = np.log1p(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
    return index, values / np.linalg.norm(values)


def logits(weight: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """The n-gram part of the head's logits: `weight` is [buckets, levels]."""
    out = np.zeros((len(texts), weight.shape[1]), dtype=np.float64)
    for row, text in enumerate(texts):
        index, values = featurise(text, weight.shape[0])
        if len(index):
            out[row] = values.astype(np.float64) @ weight[index].astype(np.float64)
    return out
