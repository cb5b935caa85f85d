"""The reply-intent planner the service runs before writing each reply.

It embeds the last turns of the conversation with the project's frozen MiniLM encoder and scores
the seven intents with the trained head (see MODEL_CARD.md). Turn embeddings are kept in a small
LRU table: in a live conversation every turn but the newest user message was already embedded by
the previous call, so a typical call encodes one or two texts instead of four.
"""

from __future__ import annotations

import pathlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.intent.features import ContextTurn, featurise
from models.intent.head import PlannerHead, load_head
from models.intent.metrics import INTENTS
from models.safety.encoder import EMBEDDING_DIM, MiniLMEncoder

__all__ = ["DEFAULT_WEIGHTS_PATH", "INTENTS", "ContextTurn", "IntentPlanner", "IntentPrediction"]

DEFAULT_WEIGHTS_PATH = pathlib.Path(__file__).resolve().parent / "weights" / "planner.safetensors"
MODEL_NAME = "minilm-l6-intent"
BATCH_SIZE = 32
# About 1.5 KiB per entry: a few MiB covers the recent turns of many concurrent conversations.
CACHE_ENTRIES = 4096


@dataclass(frozen=True)
class IntentPrediction:
    intent: str
    scores: dict[str, float]


class IntentPlanner:
    """Chooses the intent of the service's next reply from the conversation so far."""

    def __init__(
        self, encoder: MiniLMEncoder, head: PlannerHead, cache_entries: int = CACHE_ENTRIES
    ) -> None:
        if encoder.max_length != head.recipe.max_tokens:
            raise ValueError("encoder token limit differs from the one the head was trained with")
        self.encoder = encoder
        self.head = head
        self.model_id = f"{MODEL_NAME}@{head.version}"
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_entries = cache_entries
        # Ray Serve may call from several threads; the table is the only shared mutable state.
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        weights_path: pathlib.Path | None = None,
        *,
        device: str = "cpu",
        threads: int | None = None,
    ) -> IntentPlanner:
        head = load_head(weights_path or DEFAULT_WEIGHTS_PATH)
        encoder = MiniLMEncoder(device=device, threads=threads, max_length=head.recipe.max_tokens)
        return cls(encoder, head)

    def plan(self, context: Sequence[ContextTurn]) -> IntentPrediction:
        """The intent for the reply that follows `context` (oldest first; may be empty)."""
        return self.plan_batch([context])[0]

    def plan_batch(self, contexts: Sequence[Sequence[ContextTurn]]) -> list[IntentPrediction]:
        """One prediction per conversation, in the order given."""
        if not contexts:
            return []
        features = featurise(contexts, self.head.recipe, self._embed)
        probabilities = self.head.probabilities(features)
        labels = self.head.labels
        return [
            IntentPrediction(
                intent=labels[int(row.argmax())],
                scores={name: float(p) for name, p in zip(labels, row, strict=True)},
            )
            for row in probabilities
        ]

    def clear_cache(self) -> None:
        """Forget every cached turn embedding (e.g. to measure the cost of a cold call)."""
        with self._lock:
            self._cache.clear()

    def _embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        with self._lock:
            cached = {i: self._cache[t] for i, t in enumerate(texts) if t in self._cache}
        missing = [i for i in range(len(texts)) if i not in cached]
        if missing:
            out[missing] = self.encoder.encode([texts[i] for i in missing], batch_size=BATCH_SIZE)
        for i, vector in cached.items():
            out[i] = vector
        with self._lock:
            for i, text in enumerate(texts):
                self._cache[text] = out[i].copy()
                self._cache.move_to_end(text)
            while len(self._cache) > self._cache_entries:
                self._cache.popitem(last=False)
        return out
