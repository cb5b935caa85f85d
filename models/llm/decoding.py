"""The arithmetic of decoding with a Hugging Face causal LM: one forward pass, one sampled token.

Kept apart from `models.llm.generation`, which decides when these run (on its worker thread,
between checks of the stop flag) and turns tokens into a streamed reply.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from models.llm.backend import GenerationParams


@dataclass
class DecodeState:
    """What one reply carries between forward passes."""

    processors: LogitsProcessorList
    greedy: bool
    rng: torch.Generator
    # Ids the repetition penalty looks at: Haven's own words in earlier turns and in this
    # reply. Not the system prompt (that would make the crisis numbers it names less likely),
    # not the person's words (reflecting them back is wanted), not control tokens (a penalised
    # end-of-turn token makes replies run on).
    penalised: torch.Tensor
    past: Any = None
    steps: int = field(default=0)


def new_state(penalised: list[int], params: GenerationParams, device: torch.device) -> DecodeState:
    processors = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    greedy = params.temperature == 0.0
    if not greedy:
        processors.append(TemperatureLogitsWarper(params.temperature))
        if params.top_p < 1.0:
            processors.append(TopPLogitsWarper(params.top_p))
    rng = torch.Generator(device=device)
    rng.manual_seed(params.seed if params.seed is not None else secrets.randbits(63))
    return DecodeState(
        processors=processors,
        greedy=greedy,
        rng=rng,
        penalised=torch.tensor([penalised], dtype=torch.long, device=device),
    )


def fill(model: Any, state: DecodeState, input_ids: list[int], device: torch.device) -> None:
    """A forward pass over part of the prompt that only extends the cache."""
    with torch.inference_mode():
        ids = torch.tensor([input_ids], dtype=torch.long, device=device)
        out = model(input_ids=ids, cache=state.past, use_cache=True, logits_to_keep=1)
        state.past = out.cache


def step(model: Any, state: DecodeState, input_ids: list[int], device: torch.device) -> int:
    """One forward pass (the prompt's last chunk first, then one token) and the next id."""
    with torch.inference_mode():
        ids = torch.tensor([input_ids], dtype=torch.long, device=device)
        if state.steps:
            # After the prompt pass, the input is the token just sampled for this reply.
            state.penalised = torch.cat([state.penalised, ids], dim=1)
        # logits_to_keep=1: the prompt pass needs only the last position's logits.
        out = model(input_ids=ids, cache=state.past, use_cache=True, logits_to_keep=1)
        state.past = out.cache
        state.steps += 1
        scores = out.logits[:, -1, :].float()
        scores = state.processors(cast(torch.LongTensor, state.penalised), scores)
        if state.greedy:
            return int(scores.argmax(dim=-1).item())
        probs = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probs, num_samples=1, generator=state.rng).item())


def default_dtype(device: torch.device) -> torch.dtype:
    """The faster dtype for `device`: bfloat16 where the hardware has it, else fp16/float32."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type != "cpu":
        return torch.bfloat16
    # Measured on a 2-core AMD EPYC with AVX512-BF16 (bench/README.md): bf16 decodes 1.3-1.6x
    # faster than float32 and cuts time to first token 2-3x. CPUs without native bf16
    # instructions have to convert on every matmul, so float32 stays the choice there.
    if _cpu_flag("_is_avx512_bf16_supported") or _cpu_flag("_is_amx_tile_supported"):
        return torch.bfloat16
    return torch.float32


def _cpu_flag(name: str) -> bool:
    # Private torch functions: absent in some builds, in which case bf16 is not assumed.
    probe = getattr(torch.cpu, name, None)
    return bool(probe()) if callable(probe) else False


def set_threads(threads: int | None) -> None:
    # Called on the worker thread too: with OpenMP the thread count can be per calling thread.
    if threads is not None and threads > 0:
        torch.set_num_threads(threads)


def stop_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """End-of-turn ids plus every control token, none of which belongs in a reply."""
    ids: set[int] = set(getattr(tokenizer, "all_special_ids", ()))
    for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            ids.add(int(token_id))
    generation_config = getattr(model, "generation_config", None)
    eos = getattr(generation_config, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif eos is not None:
        ids.update(int(i) for i in eos)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != getattr(tokenizer, "unk_token_id", None):
        ids.add(im_end)
    return frozenset(ids)
