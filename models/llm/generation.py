"""Streaming text generation with a local Hugging Face causal language model.

The decoding loop is written out rather than delegated to `model.generate` so that each forward
step is a separate unit of work: it runs off the event loop, the stream can stop between any two
steps, and a later scheduler can batch steps of concurrent turns without changing the interface
(one stream of tokens per turn).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from models.llm.prompt import render_prompt_ids, strip_special_tokens

logger = logging.getLogger(__name__)

# Near the length bound, the reply ends at the first sentence end instead of mid-sentence.
SENTENCE_END_WINDOW = 25
# A letter (or closing bracket/quote) then terminal punctuation, then optional closers/space.
# Requiring a letter first keeps list numbers such as "1." from counting as sentence ends.
_CLOSERS = ")\"'\u201d\u2019"
_SENTENCE_END = re.compile(rf"(?:[^\W\d_]|[{_CLOSERS}])[.!?\u2026]+[{_CLOSERS}]*\s*$")
_REPLACEMENT_CHAR = "\ufffd"


class GenerationParams(BaseModel):
    """How one reply is sampled. `temperature=0` decodes greedily."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_new_tokens: int = Field(default=160, ge=1, le=4096)
    temperature: float = Field(default=0.7, ge=0.0, le=5.0)
    top_p: float = Field(default=0.9, gt=0.0, le=1.0)
    repetition_penalty: float = Field(default=1.15, ge=1.0, le=3.0)
    seed: int | None = None


class ChatBackend(Protocol):
    """What a turn needs from a language model, local or remote."""

    def stream(
        self, messages: list[dict[str, str]], params: GenerationParams
    ) -> AsyncIterator[str]: ...


class IncrementalDetokenizer:
    """Turns a growing list of token ids into text deltas.

    Decoding the whole reply each time (cheap at reply lengths) keeps spaces exactly as a full
    decode has them; per-token decoding loses or invents spaces with some tokenizers. A delta is
    held back while the text ends in U+FFFD, i.e. while a multi-byte character is still split
    across tokens, so a client never receives half a character.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._emitted = 0

    @property
    def text(self) -> str:
        return self._decode().rstrip(_REPLACEMENT_CHAR)

    def add(self, token_id: int) -> str:
        self._ids.append(token_id)
        text = self._decode()
        if text.endswith(_REPLACEMENT_CHAR):
            return ""
        return self._take(text)

    def flush(self) -> str:
        """Whatever complete text is still held back; a dangling partial character is dropped."""
        return self._take(self.text)

    def _take(self, text: str) -> str:
        delta = text[self._emitted :]
        self._emitted = len(text)
        return delta

    def _decode(self) -> str:
        text: str = self._tokenizer.decode(
            self._ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return text


@dataclass
class _DecodeState:
    """What one reply carries between forward steps."""

    processors: LogitsProcessorList
    greedy: bool
    rng: torch.Generator
    # Ids the repetition penalty looks at: the assistant's own words, earlier turns and this
    # reply. Not the system prompt (that would make the crisis numbers it names less likely),
    # not the person's words (reflecting them back is wanted), not control tokens (a penalised
    # end-of-turn token makes replies run on).
    penalised: torch.Tensor
    past: Any = None
    steps: int = field(default=0)


class TransformersBackend:
    """A local causal LM (Hugging Face folder) that streams replies as text deltas.

    Forward steps of all streams on one backend run one at a time on a single worker thread:
    that keeps the event loop free, gives concurrent turns a fair token-by-token interleaving,
    and avoids two steps fighting over the same CPU cores.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: torch.device,
        threads: int | None = None,
        name: str = "",
    ) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self._device = device
        self.name = name
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="llm-step",
            initializer=_set_threads,
            initargs=(threads,),
        )
        self._stop_ids = _stop_token_ids(model, tokenizer)
        self._context_length = int(getattr(model.config, "max_position_embeddings", 2048))

    @classmethod
    def load(
        cls,
        path: Path,
        device: str = "cpu",
        threads: int | None = None,
        *,
        dtype: torch.dtype | None = None,
    ) -> TransformersBackend:
        """Load a prepared model folder; `dtype` defaults to `default_dtype(device)`."""
        _set_threads(threads)
        torch_device = torch.device(device)
        if dtype is None:
            dtype = default_dtype(torch_device)
        started = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(path)
        model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        model.to(torch_device)
        model.eval()
        logger.info(
            "loaded %s on %s as %s in %.2f s",
            Path(path).name,
            torch_device,
            dtype,
            time.perf_counter() - started,
        )
        return cls(model, tokenizer, device=torch_device, threads=threads, name=Path(path).name)

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def model(self) -> Any:
        return self._model

    @property
    def context_length(self) -> int:
        return self._context_length

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_messages(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Prompt token ids for `messages`, with typed control tokens removed from the content."""
        cleaned = [
            {**message, "content": strip_special_tokens(message["content"], self._tokenizer)}
            for message in messages
        ]
        return render_prompt_ids(cleaned, self._tokenizer)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def stream(
        self, messages: list[dict[str, str]], params: GenerationParams
    ) -> AsyncGenerator[str, None]:
        """Yield the reply as non-empty text deltas as tokens are produced."""
        detokenizer = IncrementalDetokenizer(self._tokenizer)
        # aclosing: when our consumer stops, the token stream is closed at once, not at GC.
        async with contextlib.aclosing(self.stream_tokens(messages, params)) as tokens:
            async for token_id in tokens:
                delta = detokenizer.add(token_id)
                if delta:
                    yield delta
        tail = detokenizer.flush()
        if tail:
            yield tail

    async def stream_tokens(
        self, messages: list[dict[str, str]], params: GenerationParams
    ) -> AsyncGenerator[int, None]:
        """Yield the reply's token ids (control tokens excluded) as they are sampled.

        Stops at an end-of-turn token, at `max_new_tokens`, or, within the last
        `SENTENCE_END_WINDOW` tokens of that bound, right after a sentence ends.
        """
        prompt_ids = self.encode_messages(messages)
        if len(prompt_ids) + params.max_new_tokens > self._context_length:
            raise ValueError(
                f"prompt of {len(prompt_ids)} tokens plus max_new_tokens={params.max_new_tokens} "
                f"exceeds the model's context of {self._context_length}"
            )
        own_words = [
            token_id
            for message in messages
            if message.get("role") == "assistant"
            for token_id in self._tokenizer(message["content"], add_special_tokens=False)[
                "input_ids"
            ]
            if token_id not in self._stop_ids
        ]
        state = self._new_state(own_words, params)
        window_start = params.max_new_tokens - min(SENTENCE_END_WINDOW, params.max_new_tokens // 4)
        loop = asyncio.get_running_loop()
        reply: list[int] = []

        token_id = await loop.run_in_executor(self._executor, self._step, state, prompt_ids)
        while token_id not in self._stop_ids:
            reply.append(token_id)
            yield token_id
            if len(reply) >= params.max_new_tokens:
                break
            if len(reply) >= window_start and self._ends_sentence(reply):
                break
            token_id = await loop.run_in_executor(self._executor, self._step, state, [token_id])

    def _new_state(self, penalised: list[int], params: GenerationParams) -> _DecodeState:
        processors = LogitsProcessorList()
        if params.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
        greedy = params.temperature == 0.0
        if not greedy:
            processors.append(TemperatureLogitsWarper(params.temperature))
            if params.top_p < 1.0:
                processors.append(TopPLogitsWarper(params.top_p))
        rng = torch.Generator(device=self._device)
        rng.manual_seed(params.seed if params.seed is not None else secrets.randbits(63))
        return _DecodeState(
            processors=processors,
            greedy=greedy,
            rng=rng,
            penalised=torch.tensor([penalised], dtype=torch.long, device=self._device),
        )

    def _step(self, state: _DecodeState, input_ids: list[int]) -> int:
        """One forward pass (the whole prompt first, then one token) and the next token's id."""
        with torch.inference_mode():
            ids = torch.tensor([input_ids], dtype=torch.long, device=self._device)
            if state.steps:
                # After the prompt pass, the input is the token just sampled for this reply.
                state.penalised = torch.cat([state.penalised, ids], dim=1)
            # logits_to_keep=1: the prompt pass needs only the last position's logits.
            out = self._model(input_ids=ids, cache=state.past, use_cache=True, logits_to_keep=1)
            state.past = out.cache
            state.steps += 1
            scores = out.logits[:, -1, :].float()
            scores = state.processors(cast(torch.LongTensor, state.penalised), scores)
            if state.greedy:
                return int(scores.argmax(dim=-1).item())
            probs = torch.softmax(scores, dim=-1)
            return int(torch.multinomial(probs, num_samples=1, generator=state.rng).item())

    def _ends_sentence(self, reply: list[int]) -> bool:
        tail: str = self._tokenizer.decode(
            reply[-4:], skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return bool(_SENTENCE_END.search(tail))


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
    # Private torch helpers: absent in some builds, in which case bf16 is not assumed.
    probe = getattr(torch.cpu, name, None)
    return bool(probe()) if callable(probe) else False


def _set_threads(threads: int | None) -> None:
    # Called on the step thread too: with OpenMP the thread count can be per calling thread.
    if threads is not None and threads > 0:
        torch.set_num_threads(threads)


def _stop_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
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
