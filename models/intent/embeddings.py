"""On-disk cache of turn embeddings, so retraining does not re-run the encoder.

An entry is keyed by the encoder, its token limit and the exact texts, so a change to the data,
the feature recipe or the encoder settings makes a new entry instead of reusing a stale one.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Callable

import numpy as np

from models.safety.embedding_cache import texts_digest
from models.safety.encoder import ENCODER_NAME, MiniLMEncoder

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".cache" / "intent-embeddings"
BATCH_SIZE = 32


def cache_key(texts: list[str], max_tokens: int) -> str:
    return f"turns-{len(texts)}-{texts_digest(f'{ENCODER_NAME}|{max_tokens}', texts)}.npy"


def cached_embedder(
    encoder: Callable[[], MiniLMEncoder], max_tokens: int, cache_dir: pathlib.Path = CACHE_DIR
) -> Callable[[list[str]], np.ndarray]:
    """An `embed` function for `featurise` that reads and fills the cache.

    `encoder` is only called on a cache miss, so a retrain with a warm cache never loads MiniLM.
    """

    def embed(texts: list[str]) -> np.ndarray:
        path = cache_dir / cache_key(texts, max_tokens)
        if path.exists():
            return np.load(path)
        print(f"embedding {len(texts)} turns", file=sys.stderr, flush=True)
        vectors = encoder().encode(texts, batch_size=BATCH_SIZE)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)
        return vectors

    return embed
