"""On-disk cache of sentence embeddings, so retraining does not re-run the encoder.

Entries are keyed by the encoder, its max length and the exact texts of one source, so any change
to the data or the encoder settings makes a new entry instead of silently reusing a stale one.
"""

from __future__ import annotations

import hashlib
import pathlib
import sys
from collections.abc import Callable, Sequence

import numpy as np

from models.safety.datasets import Example
from models.safety.encoder import TextEncoder


def texts_digest(header: str, texts: Sequence[str]) -> str:
    """A short hash of `header` and the exact `texts`, for a cache file's name."""
    h = hashlib.sha256(header.encode())
    for text in texts:
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def embed_by_source(
    examples: Sequence[Example],
    cache_dir: pathlib.Path,
    file_name: Callable[[str, list[str]], str],
    compute: Callable[[list[str]], np.ndarray],
    label: str = "",
) -> np.ndarray:
    """Rows for `examples`, in order, one cache file per source (`file_name(source, texts)`);
    `compute` runs only for the sources not cached yet."""
    by_source: dict[str, list[int]] = {}
    for i, example in enumerate(examples):
        by_source.setdefault(example.source, []).append(i)
    cache_dir.mkdir(parents=True, exist_ok=True)
    parts: dict[str, np.ndarray] = {}
    for source, idx in by_source.items():
        texts = [examples[i].text for i in idx]
        path = cache_dir / file_name(source, texts)
        if path.exists():
            parts[source] = np.load(path)
            continue
        print(f"{label}embedding {len(texts)} texts from {source}", file=sys.stderr, flush=True)
        vectors = compute(texts)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)
        parts[source] = vectors
    dim = next(iter(parts.values())).shape[1] if parts else 0
    out = np.zeros((len(examples), dim), dtype=np.float32)
    for source, idx in by_source.items():
        out[idx] = parts[source]
    return out


def embed_cached(
    encoder: TextEncoder,
    examples: Sequence[Example],
    cache_dir: pathlib.Path,
    rich: bool = True,
) -> np.ndarray:
    """Features (`rich`, see `SentenceEncoder.features`) or plain embeddings for `examples`, in
    order, computing only the sources not cached yet."""
    kind = "features" if rich else "embedding"
    run = encoder.features if rich else encoder.encode

    def file_name(source: str, texts: list[str]) -> str:
        header = f"{encoder.name}|{encoder.max_length}|{source}|{kind}"
        return f"{source}-{kind}-{texts_digest(header, texts)}.npy"

    if not examples:
        width = encoder.feature_dim if rich else encoder.embedding_dim
        return np.zeros((0, width), dtype=np.float32)
    return embed_by_source(examples, cache_dir, file_name, lambda texts: run(texts, batch_size=32))
