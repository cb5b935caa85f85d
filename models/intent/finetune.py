"""Fine-tune MiniLM end to end as the intent planner, as an experiment next to the frozen head.

    python -m models.intent.finetune [--data ../shared/data] [--epochs 2] [--train-examples N]

The input is one text per example: the planned turn's position, the last seeker turn, the last
supporter turn and the seeker turn before that, joined with the tokenizer's separator and cut to
128 tokens (the most recent turn first, so truncation drops the oldest text). Mean-pooled MiniLM
feeds a linear layer over the 7 intents, trained with class-weighted cross-entropy.

The number of epochs is chosen on a dialogue-grouped fifth of train (fold 0 of
`fit.grouped_folds`) that is never fitted; ESConv valid is scored once, at the end, with the
checkpoint of the best epoch. Checkpoints go to .cache/intent-finetune/; none are committed.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from models.intent import esconv, fit
from models.intent.embeddings import REPO_ROOT
from models.intent.features import ContextTurn, Recipe, fold_turns, slot_texts
from models.intent.metrics import INTENTS, Metrics, summarise
from models.safety.encoder import EMBEDDING_DIM, default_model_path

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
CACHE_DIR = REPO_ROOT / ".cache" / "intent-finetune"
MAX_TOKENS = 128
# Stands in for a turn that does not exist yet, so the segments keep their meaning by position.
MISSING = "(none)"
SEED = 0
HELD_OUT_FOLD = 0  # one of fit.FOLDS dialogue-grouped folds: a fifth of the train dialogues


def input_text(context: Sequence[ContextTurn], separator: str) -> str:
    """The model's input for the reply that follows `context`."""
    turns = fold_turns(context)
    user_last, assistant_last, user_prev, _ = slot_texts(turns, Recipe())
    position = sum(1 for role, _, _ in turns if role == "assistant") + 1
    recent = (user_last, assistant_last, user_prev)
    parts = [text if text is not None else MISSING for text in recent]
    return f"turn {position}: " + f" {separator} ".join(parts)


def label_indices(intents: Sequence[str]) -> list[int]:
    """Indices into INTENTS; an unknown intent is an error, never a silent class."""
    unknown = sorted(set(intents) - set(INTENTS))
    if unknown:
        raise ValueError(f"unknown intents {unknown}")
    return [INTENTS.index(intent) for intent in intents]


def class_weights(y: Sequence[int], power: float = 0.5) -> torch.Tensor:
    """count_c ** -power per class, as the frozen head weighs its examples (mean 1 over classes)."""
    counts = np.maximum(np.bincount(np.asarray(y), minlength=len(INTENTS)), 1).astype(np.float64)
    weights = counts**-power
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


class Planner(torch.nn.Module):
    def __init__(self, model_path: pathlib.Path, freeze_layers: int) -> None:
        super().__init__()
        self.encoder = AutoModel.from_pretrained(str(model_path), dtype=torch.float32)
        self.head = torch.nn.Linear(EMBEDDING_DIM, len(INTENTS))
        frozen = [self.encoder.embeddings, *self.encoder.encoder.layer[:freeze_layers]]
        for module in frozen if freeze_layers > 0 else []:
            for parameter in module.parameters():
                parameter.requires_grad_(False)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return self.head(pooled)


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _encode(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> dict[str, torch.Tensor]:
    batch = tokenizer(
        texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
    )
    return dict(batch)


def predict(
    model: Planner, tokenizer: PreTrainedTokenizerBase, texts: list[str], batch: int, bf16: bool
) -> list[str]:
    model.eval()
    out = np.zeros(len(texts), dtype=np.int64)
    # Length-sorted batches cut padding; the order is put back when writing `out`.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            encoded = _encode(tokenizer, [texts[i] for i in idx])
            out[idx] = model(encoded).float().argmax(dim=1).numpy()
    return [INTENTS[i] for i in out]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=pathlib.Path, default=CACHE_DIR)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-examples", type=int, default=0, help="0 = every fitting example")
    parser.add_argument("--held-out-examples", type=int, default=0, help="0 = the whole slice")
    parser.add_argument("--freeze-layers", type=int, default=0, help="embeddings + first K layers")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast in training")
    parser.add_argument("--eval-every", type=int, default=0, help="held-out score every N steps")
    parser.add_argument("--budget-minutes", type=float, default=0.0, help="stop training after")
    parser.add_argument("--skip-valid", action="store_true", help="timing runs: no valid score")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Metrics | None:
    args = _arguments(argv)
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    path = default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    separator = tokenizer.sep_token
    train = esconv.load_split(args.data, "train")
    groups = np.array([e.dialogue for e in train])
    held = fit.grouped_folds(groups)[HELD_OUT_FOLD]
    fitting = np.flatnonzero(~held)
    if args.train_examples:
        fitting = np.sort(rng.permutation(fitting)[: args.train_examples])
    slice_ = np.flatnonzero(held)
    if args.held_out_examples:
        slice_ = slice_[: args.held_out_examples]
    texts = [input_text(e.context, separator) for e in train]
    y = np.array(label_indices([e.intent for e in train]))
    model = Planner(path, args.freeze_layers)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights(y[fitting].tolist()))
    optimiser = torch.optim.AdamW(
        [
            {"params": [p for p in model.encoder.parameters() if p.requires_grad], "lr": args.lr},
            {"params": model.head.parameters(), "lr": args.head_lr},
        ],
        weight_decay=0.01,
    )
    steps = args.epochs * -(-len(fitting) // args.batch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: max(0.0, 1 - s / steps))
    args.out.mkdir(parents=True, exist_ok=True)
    _log(f"fitting {len(fitting)} examples, held-out slice {len(slice_)}, {steps} steps")
    history: list[dict[str, float]] = []
    trained = 0
    train_seconds = 0.0

    def checkpoint(epoch: int, step: int) -> None:
        started_eval = time.perf_counter()
        predicted = predict(model, tokenizer, [texts[i] for i in slice_], 64, args.bf16)
        result = summarise([INTENTS[i] for i in y[slice_]], predicted)
        accuracy, macro_f1 = result["accuracy"] or 0.0, result["macro_f1"] or 0.0
        row = {
            "epoch": epoch,
            "step": step,
            "examples_seen": trained,
            "accuracy": accuracy,
            "macro_f1": macro_f1,
            "score": round((accuracy + macro_f1) / 2, 4),
            "train_examples_per_s": round(trained / train_seconds, 2),
            "eval_seconds": round(time.perf_counter() - started_eval, 1),
        }
        history.append(row)
        _log(f"held-out {json.dumps(row)}")
        torch.save(model.state_dict(), args.out / f"step{step}.pt")
        model.train()

    step = 0
    out_of_time = False
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = rng.permutation(fitting)
        for start in range(0, len(order), args.batch):
            tick = time.perf_counter()
            idx = order[start : start + args.batch]
            encoded = _encode(tokenizer, [texts[i] for i in idx])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                logits = model(encoded)
            loss = loss_fn(logits.float(), torch.as_tensor(y[idx]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            trained += len(idx)
            train_seconds += time.perf_counter() - tick
            if step % 25 == 0:
                rate = trained / train_seconds
                _log(f"epoch {epoch} step {step}/{steps} loss {loss.item():.3f} {rate:.2f} ex/s")
            out_of_time = bool(args.budget_minutes) and train_seconds > args.budget_minutes * 60
            if out_of_time:
                break
            if args.eval_every and step % args.eval_every == 0 and start + args.batch < len(order):
                checkpoint(epoch, step)
        checkpoint(epoch, step)
        if out_of_time:
            _log(f"training budget spent after {trained} examples")
            break
    best = max(history, key=lambda r: (r["score"], -r["step"]))
    report: dict[str, object] = {
        "held_out": history,
        "chosen_step": best["step"],
        "trained_examples": trained,
        "train_seconds": round(train_seconds),
        "fitting_examples": len(fitting),
        "held_out_examples": len(slice_),
    }
    metrics: Metrics | None = None
    if not args.skip_valid:
        model.load_state_dict(torch.load(args.out / f"step{best['step']}.pt"))
        valid = esconv.load_split(args.data, "valid")
        texts_valid = [input_text(e.context, separator) for e in valid]
        predicted = predict(model, tokenizer, texts_valid, 64, args.bf16)
        metrics = summarise([e.intent for e in valid], predicted)
        report["valid"] = metrics
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report))
    return metrics


if __name__ == "__main__":
    main()
