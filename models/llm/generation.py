"""Streaming text generation with a local Hugging Face causal language model.

The decoding loop is written out rather than delegated to `model.generate` so that the worker
can check a stop flag between any two forward passes: closing a reply's stream stops the model
within one pass, and the prompt is read in chunks so that even a long prompt stops quickly.

One reply is decoded at a time per backend, on one worker thread: two replies on the same cores
would each run at half speed, and CPU inference does not batch well at these sizes. Requests
beyond the running one wait in a bounded queue (`models.llm.admission`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from models.llm.admission import Admission, AdmissionQueue
from models.llm.backend import GenerationParams as GenerationParams
from models.llm.decoding import (
    DecodeState,
    default_dtype,
    fill,
    new_state,
    set_threads,
    step,
    stop_token_ids,
)
from models.llm.prompt import render_prompt_ids, strip_special_tokens
from models.llm.text import (
    IncrementalDetokenizer,
    SentenceBoundedText,
    ends_sentence,
    sentence_window,
)

logger = logging.getLogger(__name__)

# Prompt tokens per forward pass while reading the prompt. A pass is the longest the worker runs
# without looking at the stop flag: 64 tokens take 70-150 ms on one busy CPU core; a GPU reads
# thousands in less. Fixed per device, not tuned to the load, because the chunking changes the
# numerics slightly and a seeded reply should come out the same every time.
PREFILL_CHUNK = {"cpu": 64, "cuda": 2048}
DEFAULT_MAX_QUEUED = 8


class _End:
    """Put on a reply's queue after its last token."""


_END = _End()
_Item = int | Exception | _End


@dataclass
class _Job:
    """One reply as the worker thread sees it."""

    prompt_ids: list[int]
    state: DecodeState
    params: GenerationParams
    emit: Callable[[_Item], None]
    stop: threading.Event = field(default_factory=threading.Event)


class TransformersBackend:
    """A local causal LM (Hugging Face folder) that streams replies as text deltas."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: torch.device,
        threads: int | None = None,
        name: str = "",
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self._device = device
        self.name = name
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="llm-decode",
            initializer=set_threads,
            initargs=(threads,),
        )
        self._queue = AdmissionQueue(concurrency=1, max_queued=max_queued)
        self._stop_ids = stop_token_ids(model, tokenizer)
        self._context_length = int(getattr(model.config, "max_position_embeddings", 2048))
        self._prefill_chunk = PREFILL_CHUNK.get(device.type, PREFILL_CHUNK["cpu"])
        self._active: _Job | None = None

    @classmethod
    def load(
        cls,
        path: Path,
        device: str = "cpu",
        threads: int | None = None,
        *,
        dtype: torch.dtype | None = None,
        max_queued: int = DEFAULT_MAX_QUEUED,
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

    def close(self) -> None:
        if self._active is not None:
            self._active.stop.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        self.close()

    async def stream(
        self,
        messages: Sequence[dict[str, str]],
        params: GenerationParams,
        admission: Admission | None = None,
    ) -> AsyncGenerator[str, None]:
        """Yield the reply as non-empty text deltas as tokens are produced.

        A reply cut by `max_new_tokens` ends at its last whole sentence (`SentenceBoundedText`).
        """
        detokenizer = IncrementalDetokenizer(self._tokenizer)
        text = SentenceBoundedText(params.max_new_tokens)
        count = 0
        # aclosing: when our consumer stops, the token stream is closed at once, not at GC.
        async with contextlib.aclosing(self.stream_tokens(messages, params, admission)) as tokens:
            async for token_id in tokens:
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
    ) -> AsyncGenerator[int, None]:
        """Yield the reply's token ids (control tokens excluded) as they are sampled.

        Stops at an end-of-turn token, at `max_new_tokens`, or, within the last
        `sentence_window` tokens of that bound, right after a sentence ends. Raises
        `haven.errors.Busy` before anything else when the queue is full. When the consumer
        closes the stream, the worker is stopped and this returns once it has stopped.
        """
        if admission is None:
            admission = self.admit()
        submitted = False
        try:
            prompt_ids = self.encode_messages(messages)
            if len(prompt_ids) + params.max_new_tokens > self._context_length:
                raise ValueError(
                    f"prompt of {len(prompt_ids)} tokens plus max_new_tokens="
                    f"{params.max_new_tokens} exceeds the model's context of "
                    f"{self._context_length}"
                )
            state = self._new_state(self._own_words(messages), params)
            await admission.start()
            loop = asyncio.get_running_loop()
            items: asyncio.Queue[_Item] = asyncio.Queue()
            job = _Job(prompt_ids, state, params, emit=_poster(loop, items))
            done = loop.run_in_executor(self._executor, self._run, job)
            submitted = True
            # The place in the queue is given back when the worker is idle again, not when
            # the consumer leaves: the next reply never waits behind a half-stopped one.
            done.add_done_callback(lambda _: admission.release())
            try:
                while not isinstance(item := await items.get(), _End):
                    if isinstance(item, Exception):
                        raise item
                    yield item
            finally:
                job.stop.set()
                await asyncio.wait({done})
        finally:
            if not submitted:
                admission.release()

    def _run(self, job: _Job) -> None:
        """The worker thread's whole part of one reply."""
        self._active = job
        try:
            self._decode(job)
        except Exception as error:
            # Delivered to the stream, which raises it to whoever reads the reply.
            job.emit(error)
        finally:
            self._active = None
            job.emit(_END)

    def _decode(self, job: _Job) -> None:
        params, state = job.params, job.state
        window_start = params.max_new_tokens - sentence_window(params.max_new_tokens)
        token_id = self._prefill(job)
        reply: list[int] = []
        while token_id is not None and token_id not in self._stop_ids:
            reply.append(token_id)
            job.emit(token_id)
            if len(reply) >= params.max_new_tokens:
                return
            if len(reply) >= window_start and self._ends_sentence(reply):
                return
            if job.stop.is_set():
                return
            token_id = self._step(state, [token_id])

    def _prefill(self, job: _Job) -> int | None:
        """Read the prompt chunk by chunk; the first reply token, or None if stopped meanwhile."""
        ids, size = job.prompt_ids, self._prefill_chunk
        last = ((len(ids) - 1) // size) * size
        for start in range(0, last, size):
            if job.stop.is_set():
                return None
            self._fill(job.state, ids[start : start + size])
        if job.stop.is_set():
            return None
        return self._step(job.state, ids[last:])

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

    def _new_state(self, penalised: list[int], params: GenerationParams) -> DecodeState:
        return new_state(penalised, params, self._device)

    def _fill(self, state: DecodeState, input_ids: list[int]) -> None:
        fill(self._model, state, input_ids, self._device)

    def _step(self, state: DecodeState, input_ids: list[int]) -> int:
        return step(self._model, state, input_ids, self._device)

    def _ends_sentence(self, reply: list[int]) -> bool:
        tail: str = self._tokenizer.decode(
            reply[-4:], skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return ends_sentence(tail)


def _poster(
    loop: asyncio.AbstractEventLoop, items: asyncio.Queue[_Item]
) -> Callable[[_Item], None]:
    """Hands the worker's output to the event loop; dropped if the loop has already closed."""

    def post(item: _Item) -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(items.put_nowait, item)

    return post
