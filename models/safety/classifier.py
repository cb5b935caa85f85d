"""A crisis-risk classifier: a frozen sentence encoder (MiniLM by default) and its trained head."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

from haven.risk import Assessment, RiskLevel
from models.safety.encoder import SentenceEncoder, TextEncoder, fast_dtype
from models.safety.head import Head, decide, load_head
from models.safety.windows import pool_by_owner, split_all

WEIGHTS_DIR = pathlib.Path(__file__).resolve().parent / "weights"
DEFAULT_HEAD_PATH = WEIGHTS_DIR / "head.safetensors"
MODEL_NAME = "minilm-l6-head"
# The cascade's second reader (cascade.py): the same head recipe over all-mpnet-base-v2.
MPNET_HEAD_PATH = WEIGHTS_DIR / "head-mpnet.safetensors"
MPNET_MODEL_NAME = "mpnet-base-head"
# Its reader for the trained languages other than English: the head over multilingual-e5-small.
E5_HEAD_PATH = WEIGHTS_DIR / "head-e5.safetensors"
E5_MODEL_NAME = "e5-small-head"
# A long post is read whole in overlapping windows (windows.py); past this many characters (the
# service accepts 4,000) the rest of a pasted novel is not read, which bounds the cost.
MAX_CHARS = 10_000
BATCH_SIZE = 32


def clean(text: str) -> str:
    # Lone surrogates (possible from JSON "\ud800" escapes) cannot be encoded for the tokenizer.
    return str(text)[:MAX_CHARS].encode("utf-8", "replace").decode("utf-8")


class SafetyModel:
    """Assigns one of the five risk levels, with the per-level probabilities, to each message."""

    def __init__(
        self,
        encoder: TextEncoder,
        head: Head,
        thresholds: Mapping[str, float] | None = None,
        model_id: str = MODEL_NAME,
    ) -> None:
        self.encoder = encoder
        self.head = head
        # Thresholds given here (from the service config) replace the head's own.
        self.thresholds = dict(thresholds) if thresholds is not None else head.thresholds
        self.model_id = model_id
        self.model_version = head.version

    @classmethod
    def load(
        cls,
        head_path: pathlib.Path | None = None,
        device: str = "cpu",
        threads: int | None = None,
        thresholds: Mapping[str, float] | None = None,
        encoder_path: pathlib.Path | None = None,
        model_id: str = MODEL_NAME,
    ) -> SafetyModel:
        """The head at `head_path` (the committed one by default) over the encoder at
        `encoder_path` (MiniLM by default)."""
        head = load_head(head_path or DEFAULT_HEAD_PATH)
        encoder = SentenceEncoder(
            encoder_path, device=device, threads=threads, dtype=fast_dtype(device)
        )
        return cls(encoder, head, thresholds, model_id)

    def assess(self, texts: Sequence[str]) -> list[Assessment]:
        """One assessment per text, in the order given."""
        if not texts:
            return []
        cleaned = [clean(t) for t in texts]
        # Every window of every text in one pass, then each text's windows pooled (windows.py).
        windows, owners = split_all(self.encoder.tokenizer, cleaned)
        # Heads of the first format read the plain embedding, newer ones the richer features.
        if self.head.input_dim == self.encoder.feature_dim:
            embeddings = self.encoder.features(windows, batch_size=BATCH_SIZE)
        else:
            embeddings = self.encoder.encode(windows, batch_size=BATCH_SIZE)
        probabilities = pool_by_owner(
            self.head.probabilities(embeddings, windows), owners, len(cleaned)
        )
        levels = decide(probabilities, self.thresholds)
        labels = self.head.labels
        return [
            Assessment(
                risk_level=RiskLevel(labels[level]),
                probabilities={name: float(p) for name, p in zip(labels, row, strict=True)},
                model_id=self.model_id,
                model_version=self.model_version,
            )
            for level, row in zip(levels, probabilities, strict=True)
        ]
