"""The planner's head: a multinomial logistic regression over the recipe's features, and its file.

The file is plain safetensors (`weight` [7, dim], `bias` [7], float32), readable without pickle by
any runtime; the intent labels, version, feature recipe and a training summary (data counts,
chosen hyper-parameters, cross-validation and valid-split metrics) travel in its metadata.
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

from models.intent.features import Recipe
from models.intent.metrics import INTENTS
from models.safety.encoder import ENCODER_NAME
from models.weights_file import safetensors_bytes

HEAD_FORMAT = "haven-intent-planner/1"


# eq=False: field-wise == on numpy arrays is ambiguous, identity is the useful equality.
@dataclass(frozen=True, eq=False)
class PlannerHead:
    weight: np.ndarray
    bias: np.ndarray
    recipe: Recipe = field(default_factory=Recipe)
    labels: tuple[str, ...] = INTENTS
    version: str = "0"
    training: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if tuple(self.labels) != INTENTS:
            raise ValueError(f"head labels {self.labels} are not the planner's {INTENTS}")
        if self.weight.shape != (len(self.labels), self.recipe.dim):
            raise ValueError(f"weight shape {self.weight.shape} does not match the recipe")
        if self.bias.shape != (len(self.labels),):
            raise ValueError(f"bias shape {self.bias.shape} does not match the labels")

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        logits = features.astype(np.float64) @ self.weight.T.astype(np.float64) + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    @property
    def digest(self) -> str:
        h = hashlib.sha256(np.ascontiguousarray(self.weight, dtype=np.float32).tobytes())
        h.update(np.ascontiguousarray(self.bias, dtype=np.float32).tobytes())
        return h.hexdigest()[:8]


def save_head(head: PlannerHead, path: pathlib.Path) -> None:
    metadata = {
        "format": HEAD_FORMAT,
        "encoder": ENCODER_NAME,
        "labels": json.dumps(list(head.labels)),
        "version": head.version,
        "recipe": head.recipe.to_json(),
        "training": json.dumps(head.training, sort_keys=True),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(safetensors_bytes({"weight": head.weight, "bias": head.bias}, metadata))


def load_head(path: pathlib.Path) -> PlannerHead:
    tensors = load_file(str(path))
    with safe_open(str(path), framework="numpy") as fh:
        metadata = fh.metadata() or {}
    if metadata.get("format") != HEAD_FORMAT:
        raise ValueError(f"{path} is not a {HEAD_FORMAT} file")
    if metadata.get("encoder") != ENCODER_NAME:
        raise ValueError(f"{path} was trained on {metadata.get('encoder')}, not {ENCODER_NAME}")
    return PlannerHead(
        weight=tensors["weight"],
        bias=tensors["bias"],
        recipe=Recipe.from_json(metadata["recipe"]),
        labels=tuple(json.loads(metadata["labels"])),
        version=metadata.get("version", "0"),
        training=json.loads(metadata.get("training", "{}")),
    )
