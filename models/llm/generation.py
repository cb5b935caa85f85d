"""Streaming text generation with a local Hugging Face causal language model.

Every reply is decoded by one `ContinuousBatcher`: replies that arrive while others are being
written join the running batch at its next pass and leave it when they end, so a reply never
waits for another person's to finish. Batching pays on CPU too: plain padded `generate` on the
prepared SmolLM2-135M (bf16, 2 threads) gave 20 / 64 / 121 / 167 tokens/s in aggregate at
1 / 4 / 8 / 16 replies (DESIGN.md). Requests beyond what the batch holds wait in a bounded queue
(`models.llm.admission`); past it they are refused with `busy`.

The model state of each conversation's prompt is kept (`models.llm.prefix_cache`), so a later
turn reads only what is new since the previous one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from models.llm.admission import Admission, AdmissionQueue
from models.llm.backend import GenerationParams as GenerationParams
from models.llm.batcher import BatchLimits, ContinuousBatcher, End, Item, Reply
from models.llm.decoding import default_dtype, set_threads, stop_token_ids
from models.llm.prefix_cache import PrefixCache
from models.llm.prompt import render_prompt_ids, strip_special_tokens
from models.llm.sampling import Sampler
from models.llm.text import (
    IncrementalDetokenizer,
    SentenceBoundedText,
    ends_sentence,
    sentence_window,
)

logger = logging.getLogger(__name__)

# Prompt tokens per forward pass while reading a prompt, and the block size of the prefix cache
# (the two must match for a cached prefix to reproduce a fresh read exactly). A pass is the
# longest the batch runs without looking at stop flags: 64 tokens take 70-150 ms on one busy CPU
# core; a GPU reads thousands in less. Fixed per device, not tuned to the load, because the
# chunking changes the numerics slightly and a seeded reply should come out the same every time.
# The CUDA value is a guess between fewer passes per long prompt and less of each turn left
# outside whole cached blocks; it has not been measured (bench/batched_generation.py would).
PREFILL_CHUNK = {"cpu": 64, "cuda": 512}
DEFAULT_MAX_QUEUED = 16
DEFAULT_PREFIX_CACHE_BYTES = 256 * 2**20
DEFAULT_PREFIX_CACHE_IDLE_S = 1800.0


class TransformersBackend:
    """A local causal LM (Hugging Face folder) that streams replies as text deltas, batched."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: torch.device,
        threads: int | None = None,
        name: str = "",
        max_queued: int = DEFAULT_MAX_QUEUED,
        limits: BatchLimits | None = None,
        prefix_cache_bytes: int = DEFAULT_PREFIX_CACHE_BYTES,
        prefix_cache_idle_s: float | None = DEFAULT_PREFIX_CACHE_IDLE_S,
    ) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self._device = device
        self.name = name
        chunk = PREFILL_CHUNK.get(device.type, PREFILL_CHUNK["cpu"])
        limits = limits or BatchLimits()
        limits = replace(
            limits,
            prefill_chunk=chunk,
            prefill_tokens_per_pass=max(limits.prefill_tokens_per_pass, chunk),
        )
        self._queue = AdmissionQueue(concurrency=limits.max_batch_size, max_queued=max_queued)
        self._stop_ids = stop_token_ids(model, tokenizer)
        self._context_length = int(getattr(model.config, "max_position_embeddings", 2048))
        self.prefix_cache = PrefixCache(
            block=chunk, max_bytes=prefix_cache_bytes, idle_s=prefix_cache_idle_s
        )
        self._batcher = ContinuousBatcher(
            model,
            device=device,
            stop_ids=self._stop_ids,
            finished=self._ends_near_bound,
            limits=limits,
            prefix_cache=self.prefix_cache,
            threads=threads,
        )

    @classmethod
    def load(
        cls,
        path: Path,
        device: str = "cpu",
        threads: int | None = None,
        *,
        dtype: torch.dtype | None = None,
        max_queued: int = DEFAULT_MAX_QUEUED,
        limits: BatchLimits | None = None,
        prefix_cache_bytes: int = DEFAULT_PREFIX_CACHE_BYTES,
        prefix_cache_idle_s: float | None = DEFAULT_PREFIX_CACHE_IDLE_S,
    ) -> TransformersBackend:
        """Load a prepared model folder; `dtype` defaults to `default_dtype(device)`."""
        set_threads(threads)
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
        return cls(
            model,
            tokenizer,
            device=torch_device,
            threads=threads,
            name=Path(path).name,
            max_queued=max_queued,
            limits=limits,
            prefix_cache_bytes=prefix_cache_bytes,
            prefix_cache_idle_s=prefix_cache_idle_s,
        )

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def model(self) -> Any:
        return self._model

    @property
    def context_length(self) -> int:
        return self._context_length

    @property
    def queue(self) -> AdmissionQueue:
        return self._queue

    @property
    def batcher(self) -> ContinuousBatcher:
        return self._batcher

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_messages(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Prompt token ids for `messages`, with typed control tokens removed from the content."""
        cleaned = [
            {**message, "content": strip_special_tokens(message["content"], self._tokenizer)}
            for message in messages
        ]
        return render_prompt_ids(cleaned, self._tokenizer)

    def admit(self) -> Admission:
        return self._queue.admit()

    def forget(self, cache_key: str) -> bool:
        """Drop the model state kept for a conversation (its session was deleted)."""
        return self.prefix_cache.forget(cache_key)

    def close(self) -> None:
        self._batcher.close()
        self.prefix_cache.clear()

    async def aclose(self) -> None:
        self.close()

    async def stream(
        self,
        messages: Sequence[dict[str, str]],
        params: GenerationParams,
        admission: Admission | None = None,
        cache_key: str | None = None,
    ) -> AsyncGenerator[str, None]:
        """Yield the reply as non-empty text deltas as tokens are produced.

        A reply cut by `max_new_tokens` ends at its last whole sentence (`SentenceBoundedText`).
        `cache_key` (the session) keeps the prompt's model state for the conversation's next turn.
        """
        detokenizer = IncrementalDetokenizer(self._tokenizer)
        text = SentenceBoundedText(params.max_new_tokens)
        count = 0
        # aclosing: when our consumer stops, the token stream is closed at once, not at GC.
        tokens = self.stream_tokens(messages, params, admission, cache_key=cache_key)
        async with contextlib.aclosing(tokens) as token_ids:
            async for token_id in token_ids:
                count += 1
                piece = text.add(detokenizer.add(token_id), count)
                if piece:
                    yield piece
        tail = text.add(detokenizer.flush(), count)
        tail += text.finish(cut_by_bound=count >= params.max_new_tokens)
        if tail:
            yield tail

    async def stream_tokens(
        self,
        messages: Sequence[dict[str, str]],
        params: GenerationParams,
        admission: Admission | None = None,
        cache_key: str | None = None,
    ) -> AsyncGenerator[int, None]:
        """Yield the reply's token ids (control tokens excluded) as they are sampled.

        Stops at an end-of-turn token, at `max_new_tokens`, or, within the last
        `sentence_window` tokens of that bound, right after a sentence ends. Raises
        `haven.errors.Busy` before anything else when the queue is full. When the consumer
        closes the stream, the reply leaves the batch and this returns once it has left.
        """
        if admission is None:
            admission = self.admit()
        reply: Reply | None = None
        items: asyncio.Queue[Item] = asyncio.Queue()
        try:
            prompt_ids = self.encode_messages(messages)
            if len(prompt_ids) + params.max_new_tokens > self._context_length:
                raise ValueError(
                    f"prompt of {len(prompt_ids)} tokens plus max_new_tokens="
                    f"{params.max_new_tokens} exceeds the model's context of "
                    f"{self._context_length}"
                )
            sampler = Sampler(params, self._own_words(messages), self._device)
            await admission.start()
            reply = Reply(
                prompt_ids,
                sampler,
                params.max_new_tokens,
                emit=_poster(asyncio.get_running_loop(), items),
                cache_key=cache_key,
            )
            self._batcher.submit(reply)
            while not isinstance(item := await items.get(), End):
                if isinstance(item, Exception):
                    raise item
                yield item
            reply = None
        finally:
            if reply is not None:
                # Closed early: the place is given back once the reply has left the batch, so
                # the next reply never waits behind a half-stopped one.
                self._batcher.cancel(reply)
                with contextlib.suppress(asyncio.CancelledError):
                    await _drained(items)
            admission.release()

    def _own_words(self, messages: Sequence[dict[str, str]]) -> list[int]:
        return [
            token_id
            for message in messages
            if message.get("role") == "assistant"
            for token_id in self._tokenizer(message["content"], add_special_tokens=False)[
                "input_ids"
            ]
            if token_id not in self._stop_ids
        ]

    def _ends_near_bound(self, reply: Reply) -> bool:
        """Within the last `sentence_window` tokens of the bound, stop at a sentence end."""
        window_start = reply.max_new_tokens - sentence_window(reply.max_new_tokens)
        if len(reply.tokens) < window_start:
            return False
        tail: str = self._tokenizer.decode(
            reply.tokens[-4:], skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return ends_sentence(tail)


async def _drained(items: asyncio.Queue[Item]) -> None:
    while not isinstance(await items.get(), End):
        pass


def _poster(loop: asyncio.AbstractEventLoop, items: asyncio.Queue[Item]) -> Callable[[Item], None]:
    """Hands the worker's output to the event loop; dropped if the loop has already closed."""

    def post(item: Item) -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(items.put_nowait, item)

    return post
