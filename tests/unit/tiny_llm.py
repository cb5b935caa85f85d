"""A tiny random causal LM with SmolLM2's tokenizer and chat template, for fast model tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from models.llm.prepare import GGUF_SHA256, MARKER_NAME, is_prepared, model_dir
from tests.paths import MODEL_CACHE_DIR


def write_tiny_model(folder: Path) -> Path:
    """A 2-layer random model saved like a prepared base model (marker included)."""
    source = model_dir(MODEL_CACHE_DIR)
    if not is_prepared(source):
        pytest.skip("language model not prepared; run `make setup`")
    tokenizer = AutoTokenizer.from_pretrained(source)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )  # fmt: skip
    model: Any = LlamaForCausalLM(config)
    model.to(dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / MARKER_NAME).write_text(json.dumps({"gguf_sha256": GGUF_SHA256}))
    return folder
