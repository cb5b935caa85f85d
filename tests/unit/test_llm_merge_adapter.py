"""The committed LoRA adapter merged into the base model: same outputs, redone only when changed."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from models.llm import merge_adapter
from models.llm.merge_adapter import (
    ADAPTER_DIR,
    ADAPTER_FILES,
    adapter_digest,
    ensure_tuned_model,
    has_adapter,
    tuned_model_dir,
)
from models.llm.prepare import MODEL_DIR_NAME
from tests.paths import ROOT
from tests.unit.tiny_llm import write_tiny_model

# peft 0.21 still calls a transformers method deprecated in 5.x; harmless here.
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing`:FutureWarning")


def write_adapter(base: Path, folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "down_proj"]))
    for name, param in peft.named_parameters():
        if "lora_B" in name:  # B starts at zero; a non-zero adapter makes the test meaningful
            torch.nn.init.normal_(param, std=0.5)
    peft.save_pretrained(str(folder))
    return folder


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    write_tiny_model(tmp_path / "models" / MODEL_DIR_NAME)
    return tmp_path / "models"


def test_merged_model_computes_what_base_plus_adapter_compute(cache: Path, tmp_path: Path) -> None:
    adapter = write_adapter(cache / MODEL_DIR_NAME, tmp_path / "adapter", seed=1)

    merged_dir = ensure_tuned_model(cache, adapter)

    ids = torch.tensor([[1, 520, 2107, 314, 30, 2]])
    base = AutoModelForCausalLM.from_pretrained(cache / MODEL_DIR_NAME, dtype=torch.float32)
    expected = PeftModel.from_pretrained(base, adapter)(input_ids=ids).logits
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
    plain = AutoModelForCausalLM.from_pretrained(cache / MODEL_DIR_NAME, dtype=torch.float32)
    assert merged_dir == tuned_model_dir(cache)
    assert torch.allclose(merged(input_ids=ids).logits, expected, atol=0.05)
    assert not torch.allclose(plain(input_ids=ids).logits, expected, atol=0.05)


def test_merge_is_reused_until_the_adapter_changes(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = write_adapter(cache / MODEL_DIR_NAME, tmp_path / "adapter", seed=1)
    ensure_tuned_model(cache, adapter)
    merges: list[Path] = []
    real_merge = merge_adapter._merge

    def counted(base: Path, adapter_dir: Path, out: Path) -> None:
        merges.append(adapter_dir)
        real_merge(base, adapter_dir, out)

    monkeypatch.setattr(merge_adapter, "_merge", counted)

    ensure_tuned_model(cache, adapter)
    assert merges == []

    write_adapter(cache / MODEL_DIR_NAME, adapter, seed=2)
    ensure_tuned_model(cache, adapter)
    assert merges == [adapter]
    marker = json.loads((tuned_model_dir(cache) / "haven-prepared.json").read_text())
    assert marker["adapter_sha256"] == adapter_digest(adapter)


def test_missing_adapter_is_an_error(cache: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ensure_tuned_model(cache, tmp_path / "no-adapter")


def test_the_committed_adapter_is_complete_and_packaged() -> None:
    assert has_adapter(ADAPTER_DIR)
    record = json.loads((ADAPTER_DIR / "training_config.json").read_text())
    assert record["valid_loss"] > 0
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["models.llm"]
    package = ROOT / "models" / "llm"
    packaged = {path for pattern in globs for path in package.glob(pattern)}
    assert {ADAPTER_DIR / name for name in ADAPTER_FILES} <= packaged
