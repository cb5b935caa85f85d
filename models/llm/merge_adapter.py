"""The support-tuned reply model: the committed LoRA adapter merged into the prepared SmolLM2.

Run by `python -m models.llm.prepare` after the base conversion. The adapter
(`models/llm/adapter/`, from `python -m models.llm.finetune`) is merged in float32 and the result
saved in bf16 beside the base model, so a replica loads one plain folder (no peft at serving
time). The folder's marker records the adapter's digest: a new adapter is merged again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from models.llm.finetune_config import ADAPTER_DIR
from models.llm.prepare import MARKER_NAME, ensure_model, install_folder, make_readable

logger = logging.getLogger(__name__)

TUNED_DIR_NAME = "smollm2-135m-haven-support"
# The files that decide the merged weights; the training record beside them does not.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def tuned_model_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / TUNED_DIR_NAME


def adapter_digest(adapter_dir: Path = ADAPTER_DIR) -> str:
    digest = hashlib.sha256()
    for name in ADAPTER_FILES:
        digest.update(name.encode() + b"\x00" + (adapter_dir / name).read_bytes())
    return digest.hexdigest()


def has_adapter(adapter_dir: Path = ADAPTER_DIR) -> bool:
    return all((adapter_dir / name).is_file() for name in ADAPTER_FILES)


def is_tuned_prepared(folder: Path, digest: str) -> bool:
    try:
        info = json.loads((folder / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return False
    return bool(info.get("adapter_sha256") == digest) and (folder / "config.json").is_file()


def ensure_tuned_model(cache_dir: Path, adapter_dir: Path = ADAPTER_DIR) -> Path:
    """Return the tuned model folder, merging the adapter into the base model first if needed."""
    if not has_adapter(adapter_dir):
        raise FileNotFoundError(f"no LoRA adapter in {adapter_dir}")
    digest = adapter_digest(adapter_dir)
    target = tuned_model_dir(cache_dir)
    if is_tuned_prepared(target, digest):
        logger.debug("tuned model already prepared at %s", target)
        return target
    base = ensure_model(cache_dir)
    started = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-staging-", dir=target.parent))
    try:
        _merge(base, adapter_dir, staging)
        marker = {"base": base.name, "adapter_sha256": digest, "dtype": "bfloat16"}
        (staging / MARKER_NAME).write_text(json.dumps(marker, indent=2))
        make_readable(staging)
        install_folder(staging, target, lambda folder: is_tuned_prepared(folder, digest))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("tuned model ready at %s (%.1f s)", target, time.perf_counter() - started)
    return target


def _merge(base: Path, adapter_dir: Path, out: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Float32, as in training: bf16 -> fp32 is exact, and the sum is rounded to bf16 only once.
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    merged = merged.to(torch.bfloat16)
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
