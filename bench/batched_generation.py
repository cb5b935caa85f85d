"""Batched decoding of the local language model, in-process: Haven's continuous batcher against
padded `model.generate`, at several numbers of replies at once, on CPU or CUDA.

    python bench/batched_generation.py                      # CPU, batches 1,4,8,16
    python bench/batched_generation.py --device cuda --batches 1,4,8,16,32,64

Every reply is held to exactly `--new-tokens` tokens (stop tokens off), so both sides do the same
work. Also times a five-turn conversation's first token with and without the prefix cache.
Runs in under five minutes on one GPU; prints one JSON line (bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project, uninstalled

from bench.json_line import print_json_line

REPO_ROOT = Path(__file__).resolve().parents[1]
PROMPTS = (
    "I feel anxious about my exam tomorrow.",
    "Work has been overwhelming and I can't switch off in the evenings.",
    "My best friend hasn't replied to me in days and I don't know why.",
    "I keep waking up at 4am and can't get back to sleep.",
)
CONVERSATION = (
    "I've had a rough week at work and I'm exhausted.",
    "My manager keeps adding deadlines and I can't say no.",
    "When I get home I just sit there and can't relax.",
    "I used to go running but I stopped a few months ago.",
    "Maybe I should try to start again this weekend.",
)


def messages(backend: Any, text: str, history: list[Any] | None = None) -> list[dict[str, str]]:
    from models.llm.prompt import ChatTurn, build_messages

    turns = [*(history or []), ChatTurn("user", text)]
    return build_messages(
        turns,
        intent="validate",
        risk_level="none",
        tokenizer=backend.tokenizer,
        max_prompt_tokens=1536,
    )


async def batcher_run(backend: Any, replies: int, new_tokens: int) -> dict[str, Any]:
    from models.llm.backend import GenerationParams

    started = time.perf_counter()
    firsts: list[float] = []
    rates: list[float] = []

    async def one(index: int) -> int:
        params = GenerationParams(max_new_tokens=new_tokens, seed=index)
        prompt = messages(backend, f"{PROMPTS[index % len(PROMPTS)]} ({index})")
        count, first = 0, 0.0
        async for _ in backend.stream_tokens(prompt, params):
            count += 1
            if count == 1:
                first = time.perf_counter()
                firsts.append(first - started)
        if count > 1:
            rates.append((count - 1) / (time.perf_counter() - first))
        return count

    tokens = sum(await asyncio.gather(*(one(i) for i in range(replies))))
    elapsed = time.perf_counter() - started
    return {
        "tokens": tokens,
        "aggregate_tokens_per_s": round(tokens / elapsed, 1),
        "per_stream_tokens_per_s_p50": round(statistics.median(rates), 1) if rates else None,
        "first_token_ms_p50": round(statistics.median(firsts) * 1000, 1),
        "first_token_ms_max": round(max(firsts) * 1000, 1),
    }


def generate_run(backend: Any, replies: int, new_tokens: int) -> dict[str, Any]:
    import torch

    tokenizer, model = backend.tokenizer, backend.model
    texts = [
        tokenizer.apply_chat_template(
            messages(backend, f"{PROMPTS[i % len(PROMPTS)]} ({i})"),
            tokenize=False,
            add_generation_prompt=True,
        )
        for i in range(replies)
    ]
    tokenizer.padding_side = "left"
    batch = tokenizer(texts, return_tensors="pt", padding=True).to(model.device)
    torch.manual_seed(0)
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            **batch,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=True,
            temperature=0.7,
            top_p=0.9,
            repetition_penalty=1.15,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    elapsed = time.perf_counter() - started
    tokens = (out.shape[1] - batch["input_ids"].shape[1]) * replies
    return {"tokens": tokens, "aggregate_tokens_per_s": round(tokens / elapsed, 1)}


async def conversation_run(backend: Any, cached: bool) -> list[float]:
    """First-token time of each turn of one conversation, in ms."""
    from models.llm.backend import GenerationParams
    from models.llm.prompt import ChatTurn

    history: list[Any] = []
    firsts = []
    key = f"conversation-{cached}" if cached else None
    for index, text in enumerate(CONVERSATION):
        prompt = messages(backend, text, history)
        started = time.perf_counter()
        reply: list[int] = []
        params = GenerationParams(max_new_tokens=24, seed=index)
        async for token in backend.stream_tokens(prompt, params, cache_key=key):
            if not reply:
                firsts.append(round((time.perf_counter() - started) * 1000, 1))
            reply.append(token)
        history += [ChatTurn("user", text), ChatTurn("assistant", backend.tokenizer.decode(reply))]
    return firsts


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from models.llm.batcher import BatchLimits
    from models.llm.generation import TransformersBackend
    from models.llm.prepare import model_dir

    largest = max(args.batches)
    backend = TransformersBackend.load(
        model_dir(args.cache_dir),
        device=args.device,
        threads=args.threads,
        limits=BatchLimits(max_batch_size=largest, max_tokens_in_flight=largest * 2048),
        max_queued=0,
    )
    batcher = backend.batcher
    stop_ids, finished = batcher.stop_ids, batcher.finished
    try:
        asyncio.run(batcher_run(backend, 2, 8))  # warm-up
        batcher.stop_ids, batcher.finished = frozenset(), lambda reply: False
        results: dict[str, Any] = {}
        for replies in args.batches:
            results[str(replies)] = {
                "haven_batcher": asyncio.run(batcher_run(backend, replies, args.new_tokens)),
                "padded_generate": generate_run(backend, replies, args.new_tokens),
            }
        batcher.stop_ids, batcher.finished = stop_ids, finished
        backend.prefix_cache.clear()
        uncached = asyncio.run(conversation_run(backend, False))
        conversation = {
            "first_token_ms_by_turn_uncached": uncached,
            "first_token_ms_by_turn_cached": asyncio.run(conversation_run(backend, True)),
        }
    finally:
        backend.close()
    device: dict[str, Any] = {"type": args.device, "threads": torch.get_num_threads()}
    if args.device.startswith("cuda"):
        device["name"] = torch.cuda.get_device_name(0)
    return {
        "bench": "batched_generation",
        "model": backend.name,
        "dtype": str(backend.model.dtype),
        "device": device,
        "machine": {"cpu": platform.processor() or platform.machine()},
        "new_tokens": args.new_tokens,
        "batches": results,
        "conversation": conversation,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Batched decoding: Haven's batcher vs generate")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batches", default="1,4,8,16", help="replies at once, comma-separated")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--cache-dir", type=Path, default=REPO_ROOT / ".cache" / "models")
    args = parser.parse_args(argv)
    args.batches = [int(n) for n in args.batches.split(",") if n.strip()]
    print_json_line(lambda: run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
