"""The safety head: a small network over the sentence embedding plus hashed n-gram features,
its decision rule, and its file format.

logits = out(relu(hidden(embedding))) + ngram features @ ngram.weight. The file is plain
safetensors (`hidden.weight` [H, 384], `hidden.bias`, `out.weight` [5, H], `out.bias`,
`ngram.weight` [buckets, 5]) so any runtime can read it; labels, version, the per-level
thresholds and a summary of the training data travel in its metadata. Files of the first format
(one linear layer, `weight` and `bias`) still load.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

from haven.risk import RISK_LEVELS
from models.safety import ngrams
from models.weights_file import safetensors_bytes

HEAD_FORMAT = "haven-safety-head/2"
_READABLE = ("haven-safety-head/1", HEAD_FORMAT)


def decide(probabilities: np.ndarray, thresholds: Mapping[str, float] | None) -> np.ndarray:
    """Level index per row: the highest level L whose P(level >= L) reaches thresholds[L];
    levels without a threshold are skipped, and no threshold at all means plain argmax."""
    if not thresholds:
        return probabilities.argmax(axis=1)
    at_least = np.cumsum(probabilities[:, ::-1], axis=1)[:, ::-1]
    levels = np.zeros(len(probabilities), dtype=np.int64)
    for index in range(1, probabilities.shape[1]):
        threshold = thresholds.get(RISK_LEVELS[index])
        if threshold is not None:
            levels = np.where(at_least[:, index] >= threshold, index, levels)
    return levels


# eq=False: field-wise == on numpy arrays is ambiguous, identity is the useful equality.
@dataclass(frozen=True, eq=False)
class Head:
    tensors: Mapping[str, np.ndarray]
    labels: tuple[str, ...] = RISK_LEVELS
    version: str = "0"
    # Level name -> minimum P(level or above); None or {} means argmax.
    thresholds: Mapping[str, float] | None = None
    training: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if tuple(self.labels) != RISK_LEVELS:
            raise ValueError(f"head labels {self.labels} are not the service's {RISK_LEVELS}")
        if self.tensors["out.bias"].shape != (len(self.labels),):
            raise ValueError(f"output shape {self.tensors['out.bias'].shape} does not match")
        unknown = set(self.thresholds or {}) - set(RISK_LEVELS[1:])
        if unknown:
            raise ValueError(f"thresholds for unknown levels: {sorted(unknown)}")

    def logits(self, embeddings: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        h = embeddings.astype(np.float64)
        if "hidden.weight" in self.tensors:
            h = np.maximum(h @ self.tensors["hidden.weight"].T + self.tensors["hidden.bias"], 0.0)
        out = h @ self.tensors["out.weight"].T.astype(np.float64) + self.tensors["out.bias"]
        if "ngram.weight" in self.tensors:
            if texts is None:
                raise ValueError("this head reads n-grams: pass the texts")
            out += ngrams.logits(self.tensors["ngram.weight"], texts)
        return out

    def probabilities(
        self, embeddings: np.ndarray, texts: Sequence[str] | None = None
    ) -> np.ndarray:
        logits = self.logits(embeddings, texts)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        return decide(probabilities, self.thresholds)

    @property
    def input_dim(self) -> int:
        first = self.tensors.get("hidden.weight", self.tensors["out.weight"])
        return int(first.shape[1])

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.tensors):
            h.update(np.ascontiguousarray(self.tensors[name], dtype=np.float32).tobytes())
        return h.hexdigest()[:8]


def save_head(head: Head, path: pathlib.Path) -> None:
    metadata = {
        "format": HEAD_FORMAT,
        "labels": json.dumps(list(head.labels)),
        "version": head.version,
        "thresholds": json.dumps(dict(head.thresholds) if head.thresholds else None),
        "training": json.dumps(head.training, sort_keys=True),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(safetensors_bytes(head.tensors, metadata))


def load_head(path: pathlib.Path) -> Head:
    tensors = dict(load_file(str(path)))
    with safe_open(str(path), framework="numpy") as fh:
        metadata = fh.metadata() or {}
    if metadata.get("format") not in _READABLE:
        raise ValueError(f"{path} is not a {HEAD_FORMAT} file")
    if "weight" in tensors:  # the first format: one linear layer
        tensors = {"out.weight": tensors.pop("weight"), "out.bias": tensors.pop("bias")}
    thresholds = json.loads(metadata.get("thresholds", "null"))
    return Head(
        tensors=tensors,
        labels=tuple(json.loads(metadata["labels"])),
        version=metadata.get("version", "0"),
        thresholds=thresholds,
        training=json.loads(metadata.get("training", "{}")),
    )
