"""Fine-tune SmolLM2-135M-Instruct with LoRA on ESConv supporter turns, conditioned on the intent.

`python -m models.llm.finetune [--max-minutes M] [--max-steps N] [--threads N] [--train-examples N]`

Trains a LoRA adapter (fp32) on prompts rendered by `build_messages` (see `finetune_data`), with
the loss on the reply and its end-of-turn token only. A checkpoint (adapter, optimiser, schedule,
RNG) is written every `checkpoint_minutes` and the run resumes from it, so an interrupted run
loses little. Each checkpoint is scored on valid; the adapter with the lowest valid loss is
written to `models/llm/adapter/` with its training config, ready to commit.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import sys
import time
from pathlib import Path

import torch

from models.llm.finetune_config import TrainConfig
from models.llm.finetune_data import Encoded, encode_sample, load_turns
from models.llm.finetune_state import Checkpoints, batches, mean_loss, reply_loss

logger = logging.getLogger("models.llm.finetune")
PID_FILE = Path("/tmp/finetune.pid")
LOG_FILE = Path("/tmp/finetune.log")


def _seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _load(config: TrainConfig) -> tuple[torch.nn.Module, object]:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.model_path)
    base = AutoModelForCausalLM.from_pretrained(config.model_path, dtype=torch.float32)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        layers_to_transform=list(range(config.first_tuned_layer, base.config.num_hidden_layers)),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(base, lora), tokenizer


def train(config: TrainConfig) -> float:
    """Run (or resume) training; returns the best valid loss."""
    torch.set_num_threads(config.threads)
    _seed(config.seed)
    model, tokenizer = _load(config)
    turns_dir = config.data_dir
    train_set = encode_sample(
        load_turns(turns_dir, "train"), tokenizer,
        count=config.train_examples, max_tokens=config.max_tokens, seed=config.seed,
    )  # fmt: skip
    valid_set = encode_sample(
        load_turns(turns_dir, "valid"), tokenizer,
        count=config.valid_examples, max_tokens=config.max_tokens, seed=config.seed,
    )  # fmt: skip
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    logger.info(
        "%d train / %d valid examples, %d steps", len(train_set), len(valid_set), total_steps
    )

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    warmup = max(1, int(total_steps * config.warmup_fraction))

    def schedule(step: int) -> float:
        # Linear warm-up, then linear decay to 10 %: the run may be cut by --max-minutes, and a
        # gentle decay leaves any checkpoint usable.
        if step < warmup:
            return (step + 1) / warmup
        return max(0.1, 1.0 - 0.9 * (step - warmup) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    checkpoints = Checkpoints(config)
    step, best = checkpoints.resume(model, optimizer, scheduler)
    started = time.monotonic()
    last_save = started
    done_examples = 0
    model.train()
    for batch_step, batch in enumerate(batches(train_set, config, total_steps), start=0):
        if batch_step < step:
            continue  # already trained before the resume; the order is seeded, so skip it
        summed, tokens = reply_loss(model, batch)
        loss = summed / max(1, tokens)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        done_examples += int(batch["input_ids"].shape[0])
        elapsed = time.monotonic() - started
        if step % 10 == 0:
            logger.info(
                "step %d/%d loss %.4f lr %.2e %.2f examples/s",
                step, total_steps, loss.item(), scheduler.get_last_lr()[0], done_examples / elapsed,
            )  # fmt: skip
        out_of_time = config.max_minutes is not None and elapsed > config.max_minutes * 60
        out_of_time |= config.max_steps is not None and step >= config.max_steps
        due = time.monotonic() - last_save > config.checkpoint_minutes * 60
        if due or out_of_time or step == total_steps:
            best = _evaluate_and_save(model, valid_set, config, checkpoints, step, best, optimizer,
                                      scheduler, done_examples / elapsed)  # fmt: skip
            last_save = time.monotonic()
            model.train()
        if out_of_time:
            logger.info("stopping at step %d: --max-minutes or --max-steps reached", step)
            break
    return best


def _evaluate_and_save(
    model: torch.nn.Module,
    valid_set: list[Encoded],
    config: TrainConfig,
    checkpoints: Checkpoints,
    step: int,
    best: float,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    examples_per_s: float,
) -> float:
    valid_loss = mean_loss(model, valid_set, config)
    logger.info("step %d valid loss %.4f (best %.4f)", step, valid_loss, best)
    if valid_loss < best:
        best = valid_loss
        checkpoints.export_best(model, step, valid_loss, examples_per_s)
    checkpoints.save(model, optimizer, scheduler, step, best)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-examples", type=int, default=None)
    parser.add_argument("--checkpoint-minutes", type=float, default=None)
    args = parser.parse_args(argv)
    overrides = {
        "max_minutes": args.max_minutes,
        "max_steps": args.max_steps,
        "threads": args.threads,
        "train_examples": args.train_examples,
        "checkpoint_minutes": args.checkpoint_minutes,
    }
    config = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    PID_FILE.write_text(str(os.getpid()))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(LOG_FILE)],
    )
    best = train(config)
    logger.info("best valid loss %.4f; adapter in %s", best, config.adapter_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
