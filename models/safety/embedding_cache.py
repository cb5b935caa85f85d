"""On-disk cache of sentence embeddings, so retraining does not re-run the encoder.

Entries are keyed by the encoder, its max length and the exact texts of one source, so any change
to the data or the encoder settings makes a new entry instead of silently reusing a stale one.
"""

from __future__ import annotations

import hashlib
import pathlib
import sys
from collections.abc import Sequence

import numpy as np

from models.safety.datasets import Example
from models.safety.encoder import EMBEDDING_DIM, ENCODER_NAME, FEATURE_DIM, MiniLMEncoder


def _key(encoder: MiniLMEncoder, source: str, texts: Sequence[str], kind: str) -> str:
    h = hashlib.sha256(f"{ENCODER_NAME}|{encoder.max_length}|{source}|{kind}".encode())
    for text in texts:
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return f"{source}-{kind}-{h.hexdigest()[:16]}.npy"


def embed_cached(
    encoder: MiniLMEncoder,
    examples: Sequence[Example],
    cache_dir: pathlib.Path,
    rich: bool = True,
) -> np.ndarray:
    """Features (`rich`, see `MiniLMEncoder.features`) or plain embeddings for `examples`, in
    order, computing only the sources not cached yet."""
    kind = "features" if rich else "embedding"
    out = np.zeros((len(examples), FEATURE_DIM if rich else EMBEDDING_DIM), dtype=np.float32)
    by_source: dict[str, list[int]] = {}
    for i, example in enumerate(examples):
        by_source.setdefault(example.source, []).append(i)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for source, idx in by_source.items():
        texts = [examples[i].text for i in idx]
        path = cache_dir / _key(encoder, source, texts, kind)
        if path.exists():
            vectors = np.load(path)
        else:
            print(f"embedding {len(texts)} texts from {source}", file=sys.stderr, flush=True)
            run = encoder.features if rich else encoder.encode
            vectors = run(texts, batch_size=32)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, vectors)
            tmp.replace(path)
        out[idx] = vectors
    return out
