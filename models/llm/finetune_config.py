"""The reply model's fine-tuning configuration; written beside the adapter it produced."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from models.llm.prepare import DEFAULT_CACHE_DIR, model_dir

ADAPTER_DIR = Path(__file__).parent / "adapter"
TRAINING_CONFIG_NAME = "training_config.json"


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_path: Path = model_dir(DEFAULT_CACHE_DIR)
    data_dir: Path = Path("../shared/data/esconv")
    adapter_dir: Path = ADAPTER_DIR
    checkpoint_dir: Path = Path(".cache/finetune")
    seed: int = 0
    # LoRA on every attention and MLP projection: the model has to change how it writes, not
    # only what it attends to.
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = (
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    )  # fmt: skip
    # Adapters on the upper half only: gradients then stop half-way down, so a step does less
    # work on this shared CPU; the upper layers carry most of the style and turn-taking.
    first_tuned_layer: int = 15
    lr: float = 2e-4
    warmup_fraction: float = 0.05
    batch_size: int = 8
    epochs: int = 1
    # Whole rendered example (prompt + reply + end of turn); the prompt gives up old turns.
    max_tokens: int = 224
    train_examples: int = 4000
    valid_examples: int = 200
    checkpoint_minutes: float = 12.0
    max_minutes: float | None = None
    # Stop after this many steps (the schedule still spans the whole run): reproduces a run that
    # was stopped by time, since the order of batches and the seeds are fixed.
    max_steps: int | None = None
    threads: int = 2

    def run_key(self) -> dict[str, object]:
        """The settings a resumed run must share with the checkpoint it resumes."""
        run_only = {"max_minutes", "max_steps", "threads", "checkpoint_minutes", "adapter_dir"}
        keep = self.model_dump(mode="json", exclude=run_only)
        return dict(keep)
