"""The per-source embedding cache: rows in the examples' order, each source computed once."""

from __future__ import annotations

import pathlib

import numpy as np

from models.safety.datasets import Example
from models.safety.embedding_cache import embed_by_source, texts_digest


def example(text: str, source: str) -> Example:
    return Example(text=text, level=0, source=source, group=text, split="train")


def test_rows_follow_the_examples_and_a_cached_source_is_not_computed_again(
    tmp_path: pathlib.Path,
) -> None:
    examples = [example("a", "s1"), example("bb", "s2"), example("ccc", "s1")]
    computed: list[list[str]] = []

    def compute(texts: list[str]) -> np.ndarray:
        computed.append(texts)
        return np.array([[float(len(t))] for t in texts], dtype=np.float32)

    def name(source: str, texts: list[str]) -> str:
        return f"{source}-{texts_digest(source, texts)}.npy"

    first = embed_by_source(examples, tmp_path, name, compute)
    again = embed_by_source(examples, tmp_path, name, compute)

    assert first.tolist() == [[1.0], [2.0], [3.0]]
    assert again.tolist() == first.tolist()
    assert computed == [["a", "ccc"], ["bb"]]


def test_the_digest_changes_with_any_text_or_the_header() -> None:
    base = texts_digest("enc|256", ["a", "b"])
    assert base == texts_digest("enc|256", ["a", "b"])
    assert base != texts_digest("enc|256", ["a", "c"])
    assert base != texts_digest("enc|128", ["a", "b"])
    assert base != texts_digest("enc|256", ["ab"])
