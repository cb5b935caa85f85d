"""Batches, valid loss and checkpoints (save, resume, best-adapter export) for fine-tuning."""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from models.llm.finetune_config import TRAINING_CONFIG_NAME, TrainConfig
from models.llm.finetune_data import IGNORE_INDEX, Encoded

logger = logging.getLogger(__name__)
STATE_NAME = "state.pt"


def collate(examples: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded to the longest example of the batch (padding is neither attended nor scored)."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def batches(
    examples: Sequence[Encoded], config: TrainConfig, total_steps: int, pad_id: int = 2
) -> Iterator[dict[str, torch.Tensor]]:
    """`total_steps` batches, a fresh seeded order each epoch: a resumed run replays the same."""
    step, epoch = 0, 0
    while step < total_steps:
        order = list(range(len(examples)))
        random.Random(config.seed * 1000 + epoch).shuffle(order)
        for start in range(0, len(order), config.batch_size):
            if step >= total_steps:
                return
            yield collate([examples[i] for i in order[start : start + config.batch_size]], pad_id)
            step += 1
        epoch += 1


def reply_loss(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the scored (reply) tokens, and their count.

    The vocabulary projection is applied only where a token is scored: replies are ~12 % of an
    example, and the 49k-word projection of every position is a fifth of the step's work.
    """
    causal_lm = model.get_base_model()
    hidden = causal_lm.model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state
    targets = batch["labels"][:, 1:]
    scored = targets != IGNORE_INDEX
    logits = causal_lm.lm_head(hidden[:, :-1][scored]).float()
    loss = torch.nn.functional.cross_entropy(logits, targets[scored], reduction="sum")
    return loss, int(scored.sum())


@torch.no_grad()
def mean_loss(model: Any, examples: Sequence[Encoded], config: TrainConfig) -> float:
    """Mean loss per scored token over `examples` (reply tokens only), in eval mode."""
    model.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(examples), config.batch_size):
        loss, count = reply_loss(model, collate(examples[start : start + config.batch_size], 2))
        total += float(loss)
        tokens += count
    return total / max(1, tokens)


class Checkpoints:
    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.folder = config.checkpoint_dir / "latest"

    def resume(self, model: Any, optimizer: Any, scheduler: Any) -> tuple[int, float]:
        """(steps done, best valid loss) after loading the latest checkpoint, if it matches."""
        from peft import set_peft_model_state_dict

        path = self.folder / STATE_NAME
        if not path.is_file():
            return 0, float("inf")
        state = torch.load(path, weights_only=False)
        if state["run_key"] != self.config.run_key():
            logger.warning("checkpoint in %s is from other settings; starting over", self.folder)
            return 0, float("inf")
        set_peft_model_state_dict(model, state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        logger.info("resumed at step %d (best valid loss %.4f)", state["step"], state["best"])
        return int(state["step"]), float(state["best"])

    def save(self, model: Any, optimizer: Any, scheduler: Any, step: int, best: float) -> None:
        from peft import get_peft_model_state_dict

        state = {
            "run_key": self.config.run_key(),
            "adapter": get_peft_model_state_dict(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "step": step,
            "best": best,
        }
        # Written beside and renamed: a run killed mid-save keeps the previous checkpoint.
        staging = self.config.checkpoint_dir / "staging"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        torch.save(state, staging / STATE_NAME)
        shutil.rmtree(self.folder, ignore_errors=True)
        staging.rename(self.folder)
        logger.info("checkpoint at step %d in %s", step, self.folder)

    def export_best(self, model: Any, step: int, valid_loss: float, examples_per_s: float) -> None:
        out = self.config.adapter_dir
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        # peft writes a template model card; models/llm/MODEL_CARD.md is the real one.
        (out / "README.md").unlink(missing_ok=True)
        record = {
            **self.config.model_dump(mode="json", exclude={"adapter_dir"}),
            "step": step,
            "examples_seen": step * self.config.batch_size,
            "valid_loss": round(valid_loss, 4),
            "train_examples_per_s": round(examples_per_s, 3),
        }
        (out / TRAINING_CONFIG_NAME).write_text(json.dumps(record, indent=2) + "\n")
        logger.info("best adapter so far (valid loss %.4f) written to %s", valid_loss, out)
