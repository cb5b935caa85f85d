"""Any local Hugging Face sequence-classification folder as the crisis-risk classifier.

The model's own labels are mapped onto the five risk levels by `label_map` (several labels may
map to one level, whose probability is then their sum; a level no label maps to gets 0), so a
model trained elsewhere can be swapped in from the service config without code. A text longer
than the model's window is read whole, as by the default classifier: overlapping windows, each
scored, pooled by the highest P(level >= L) (`windows.py`).
"""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from haven.risk import RISK_LEVELS, Assessment, RiskLevel
from models.safety.classifier import clean
from models.safety.head import decide
from models.safety.windows import OVERLAP, pool_by_owner, split_all

MAX_LENGTH = 256
BATCH_SIZE = 32


def _version(path: pathlib.Path) -> str:
    """A digest of the folder's config and weights, so a retrained model gets a new version."""
    h = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if file.suffix in (".json", ".safetensors", ".bin"):
            h.update(file.name.encode())
            h.update(file.read_bytes())
    return h.hexdigest()[:8]


class HFSafetyModel:
    """Scores texts with a sequence classifier and maps its labels onto the risk levels."""

    def __init__(
        self,
        model_path: pathlib.Path,
        label_map: Mapping[str, str] | None = None,
        thresholds: Mapping[str, float] | None = None,
        device: str = "cpu",
        threads: int | None = None,
        max_length: int = MAX_LENGTH,
    ) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        self.model = AutoModelForSequenceClassification.from_pretrained(str(model_path))
        self.model = self.model.to(self.device).eval()
        # Longer input than the model has positions for would fail, not just be truncated.
        positions = getattr(self.model.config, "max_position_embeddings", None) or max_length
        self.max_length = min(max_length, int(positions))
        # A window of text tokens plus the model's own special tokens fills `max_length`.
        self.window = self.max_length - self.tokenizer.num_special_tokens_to_add()
        self.overlap = min(OVERLAP, self.window // 4)
        self.thresholds = dict(thresholds) if thresholds else None
        self.mapping = self._mapping(label_map)
        self.model_id = f"hf:{model_path.name}"
        self.model_version = _version(model_path)

    def _mapping(self, label_map: Mapping[str, str] | None) -> np.ndarray:
        """[model labels, 5] matrix that sums each model label's probability into its level."""
        id2label = {int(i): str(name) for i, name in self.model.config.id2label.items()}
        # Without a map, labels already named after the levels map to themselves.
        names = label_map or {name: name.lower() for name in id2label.values()}
        matrix = np.zeros((len(id2label), len(RISK_LEVELS)))
        for index, name in id2label.items():
            level = names.get(name)
            if level is None or level not in RISK_LEVELS:
                raise ValueError(f"model label {name!r} has no risk level in label_map")
            matrix[index, RISK_LEVELS.index(level)] = 1.0
        return matrix

    @torch.inference_mode()
    def _probabilities(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.mapping.shape[0]))
        # Similar lengths together cut padding, as in the default encoder.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), BATCH_SIZE):
            idx = order[start : start + BATCH_SIZE]
            batch = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            logits = self.model(**batch).logits.float()
            out[idx] = torch.softmax(logits, dim=-1).cpu().numpy()
        return out

    def assess(self, texts: Sequence[str]) -> list[Assessment]:
        """One assessment per text, in the order given."""
        if not texts:
            return []
        cleaned = [clean(t) for t in texts]
        windows, owners = split_all(self.tokenizer, cleaned, self.window, self.overlap)
        probabilities = self._probabilities(windows) @ self.mapping
        probabilities = pool_by_owner(probabilities, owners, len(texts))
        levels = decide(probabilities, self.thresholds)
        return [
            Assessment(
                risk_level=RiskLevel(RISK_LEVELS[level]),
                probabilities={name: float(p) for name, p in zip(RISK_LEVELS, row, strict=True)},
                model_id=self.model_id,
                model_version=self.model_version,
            )
            for level, row in zip(levels, probabilities, strict=True)
        ]
