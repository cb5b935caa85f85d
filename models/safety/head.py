"""The safety head: a multinomial logistic regression over sentence embeddings, and its file format.

The file is plain safetensors (`weight` [5, 384], `bias` [5]) so any runtime can read it; the
labels, version, decision rule and a summary of the training data travel in its metadata.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

from haven.risk import RISK_LEVELS

HEAD_FORMAT = "haven-safety-head/1"
_HIGH = RISK_LEVELS.index("high")


# eq=False: field-wise == on numpy arrays is ambiguous, identity is the useful equality.
@dataclass(frozen=True, eq=False)
class Head:
    weight: np.ndarray
    bias: np.ndarray
    labels: tuple[str, ...] = RISK_LEVELS
    version: str = "0"
    # P(high) + P(critical) at or above this escalates the decision to high or critical even
    # when a lower level has the single largest probability; None means plain argmax.
    escalate_threshold: float | None = None
    training: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.weight.shape != (len(self.labels), self.weight.shape[1]):
            raise ValueError(f"weight shape {self.weight.shape} does not match labels")
        if self.bias.shape != (len(self.labels),):
            raise ValueError(f"bias shape {self.bias.shape} does not match labels")
        if tuple(self.labels) != RISK_LEVELS:
            raise ValueError(f"head labels {self.labels} are not the service's {RISK_LEVELS}")

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        logits = embeddings.astype(np.float64) @ self.weight.T.astype(np.float64) + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """Level index per row: argmax, escalated when high+critical mass reaches the threshold."""
        levels = probabilities.argmax(axis=1)
        if self.escalate_threshold is not None:
            severe = probabilities[:, _HIGH:].sum(axis=1) >= self.escalate_threshold
            top_severe = _HIGH + probabilities[:, _HIGH:].argmax(axis=1)
            levels = np.where(severe & (levels < _HIGH), top_severe, levels)
        return levels

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        return self.decide(self.probabilities(embeddings))

    @property
    def digest(self) -> str:
        h = hashlib.sha256(np.ascontiguousarray(self.weight, dtype=np.float32).tobytes())
        h.update(np.ascontiguousarray(self.bias, dtype=np.float32).tobytes())
        return h.hexdigest()[:8]


def save_head(head: Head, path: pathlib.Path) -> None:
    metadata = {
        "format": HEAD_FORMAT,
        "labels": json.dumps(list(head.labels)),
        "version": head.version,
        "escalate_threshold": json.dumps(head.escalate_threshold),
        "training": json.dumps(head.training, sort_keys=True),
    }
    tensors = {"weight": head.weight, "bias": head.bias}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_safetensors_bytes(tensors, metadata))


def _safetensors_bytes(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """Serialise float32 tensors in the safetensors layout with a sorted header.

    The library writes its header from a hash map, so the same head would give different bytes
    on each run; writing it here keeps a retrained, unchanged head byte-identical in git.
    """
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        shape = list(tensors[name].shape)
        end = offset + len(data)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}
        chunks.append(data)
        offset = end
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format asks for an 8-byte aligned data section
    return len(raw).to_bytes(8, "little") + raw + b"".join(chunks)


def load_head(path: pathlib.Path) -> Head:
    tensors = load_file(str(path))
    with safe_open(str(path), framework="numpy") as fh:
        metadata = fh.metadata() or {}
    if metadata.get("format") != HEAD_FORMAT:
        raise ValueError(f"{path} is not a {HEAD_FORMAT} file")
    return Head(
        weight=tensors["weight"],
        bias=tensors["bias"],
        labels=tuple(json.loads(metadata["labels"])),
        version=metadata.get("version", "0"),
        escalate_threshold=json.loads(metadata.get("escalate_threshold", "null")),
        training=json.loads(metadata.get("training", "{}")),
    )
