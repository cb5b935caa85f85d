"""The crisis-risk classifier the service runs: the frozen MiniLM encoder and the trained head."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from haven.risk import Assessment, RiskLevel
from models.safety.encoder import MiniLMEncoder
from models.safety.head import Head, load_head

DEFAULT_HEAD_PATH = pathlib.Path(__file__).resolve().parent / "weights" / "head.safetensors"
MODEL_NAME = "minilm-l6-head"
# Far more characters than 256 tokens can cover: trimming first keeps a pasted novel from costing
# a full tokenisation pass before truncation throws nearly all of it away.
MAX_CHARS = 10_000
BATCH_SIZE = 32


def _clean(text: str) -> str:
    # Lone surrogates (possible from JSON "\ud800" escapes) cannot be encoded for the tokenizer.
    return str(text)[:MAX_CHARS].encode("utf-8", "replace").decode("utf-8")


class SafetyModel:
    """Assigns one of the five risk levels, with the per-level probabilities, to each message."""

    def __init__(self, encoder: MiniLMEncoder, head: Head) -> None:
        self.encoder = encoder
        self.head = head
        self.model_id = f"{MODEL_NAME}@{head.version}"

    @classmethod
    def load(
        cls,
        head_path: pathlib.Path | None = None,
        device: str = "cpu",
        threads: int | None = None,
    ) -> SafetyModel:
        head = load_head(head_path or DEFAULT_HEAD_PATH)
        return cls(MiniLMEncoder(device=device, threads=threads), head)

    def assess(self, texts: Sequence[str]) -> list[Assessment]:
        """One assessment per text, in the order given."""
        if not texts:
            return []
        embeddings = self.encoder.encode([_clean(t) for t in texts], batch_size=BATCH_SIZE)
        probabilities = self.head.probabilities(embeddings)
        levels = self.head.decide(probabilities)
        labels = self.head.labels
        return [
            Assessment(
                risk_level=RiskLevel(labels[level]),
                probabilities={name: float(p) for name, p in zip(labels, row, strict=True)},
                model_id=self.model_id,
            )
            for level, row in zip(levels, probabilities, strict=True)
        ]
