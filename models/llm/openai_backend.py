"""Replies from any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp, Ollama).

The reply streams over server-sent events through the `openai` client. A request that fails
before its first piece of text is retried a bounded number of times; once text has reached the
person, a failure ends the reply (a retry would repeat or contradict what they already read).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import random
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from models.llm.admission import Admission, AdmissionQueue
from models.llm.backend import GenerationParams
from models.llm.text import SentenceBoundedText

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletionMessageParam

logger = logging.getLogger(__name__)

# Statuses a server answers when a retry may well succeed: overloaded, restarting, rate limited.
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
RETRY_BACKOFF_S = 0.25
MAX_BACKOFF_S = 4.0
# Local servers ignore the key, but the client refuses to start without one.
NO_KEY = "not-needed"


class OpenAIOptions(BaseModel):
    """The `openai:` block of the generator's options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(min_length=1)
    model: str = Field(min_length=1)
    # The NAME of the environment variable holding the key; None: the endpoint takes no key.
    api_key_env: str | None = "OPENAI_API_KEY"
    # Longest silence while waiting for the next piece of data, the first included.
    timeout_s: float = Field(default=30.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    max_concurrent: int = Field(default=8, ge=1, le=4096)
    # Server-specific sampling fields, e.g. {"repetition_penalty": 1.1} for vLLM.
    extra_body: dict[str, Any] = Field(default_factory=dict)


class IncompleteReply(RuntimeError):
    """The stream ended without a finish reason: the server or a proxy cut it short."""


class OpenAIBackend:
    """Streams replies from a remote chat-completions endpoint; `tokenizer` is None."""

    tokenizer: Any = None

    def __init__(
        self,
        options: OpenAIOptions,
        *,
        max_queued: int = 8,
        retry_backoff_s: float = RETRY_BACKOFF_S,
    ) -> None:
        from openai import AsyncOpenAI, Timeout

        self.options = options
        self.name = options.model
        self._backoff_s = retry_backoff_s
        self._queue = AdmissionQueue(concurrency=options.max_concurrent, max_queued=max_queued)
        self._client: AsyncOpenAI = AsyncOpenAI(
            base_url=options.base_url,
            api_key=api_key(options),
            timeout=Timeout(options.timeout_s, connect=options.connect_timeout_s),
            # Retries are ours: the client's would also retry a stream that already gave text.
            max_retries=0,
        )

    @property
    def queue(self) -> AdmissionQueue:
        return self._queue

    def admit(self) -> Admission:
        return self._queue.admit()

    def close(self) -> None:
        """Nothing to stop: each reply's connection is closed with its stream."""

    async def aclose(self) -> None:
        await self._client.close()

    def forget(self, cache_key: str) -> bool:
        """Nothing is kept here: the server owns its own prefix cache (vLLM's, say)."""
        return False

    async def stream(
        self,
        messages: Sequence[dict[str, str]],
        params: GenerationParams,
        admission: Admission | None = None,
        cache_key: str | None = None,
    ) -> AsyncGenerator[str, None]:
        """The reply as non-empty text pieces; `haven.errors.Busy` first when the queue is full.

        A reply cut by `max_new_tokens` ends at its last whole sentence. Each streamed chunk
        is counted as one token, which is what these servers send. `cache_key` is not sent:
        servers with prefix caching (vLLM) find a conversation's shared prefix themselves.
        """
        if admission is None:
            admission = self.admit()
        try:
            await admission.start()
            text = SentenceBoundedText(params.max_new_tokens)
            chunks = 0
            finish_reason: str | None = None
            # aclosing: a consumer that leaves closes the HTTP stream now, not at GC.
            async with aclosing(self._deltas(messages, params)) as deltas:
                async for delta, finish in deltas:
                    chunks += 1 if delta else 0
                    finish_reason = finish or finish_reason
                    piece = text.add(delta, chunks)
                    if piece:
                        yield piece
            tail = text.finish(cut_by_bound=finish_reason == "length")
            if tail:
                yield tail
        finally:
            admission.release()

    async def _deltas(
        self, messages: Sequence[dict[str, str]], params: GenerationParams
    ) -> AsyncGenerator[tuple[str, str | None], None]:
        """(text, finish_reason) per chunk, retrying failures that come before any text."""
        attempt = 0
        while True:
            gave_text = False
            try:
                async with aclosing(self._attempt(messages, params)) as chunks:
                    async for delta, finish in chunks:
                        gave_text = gave_text or bool(delta)
                        yield delta, finish
                return
            except Exception as error:
                if gave_text or attempt >= self.options.max_retries or not _retryable(error):
                    raise
                attempt += 1
                delay = min(self._backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
                logger.warning(
                    "%s failed before its first token (%s); retry %d of %d in %.2f s",
                    self.options.base_url,
                    type(error).__name__,
                    attempt,
                    self.options.max_retries,
                    delay,
                )
                # Jitter keeps replicas that failed together from retrying together.
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _attempt(
        self, messages: Sequence[dict[str, str]], params: GenerationParams
    ) -> AsyncGenerator[tuple[str, str | None], None]:
        from openai import omit

        stream = await self._client.chat.completions.create(
            model=self.options.model,
            messages=cast("list[ChatCompletionMessageParam]", [dict(m) for m in messages]),
            stream=True,
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed if params.seed is not None else omit,
            extra_body=self.options.extra_body or None,
        )
        finished = False
        # Leaving this block for any reason, a closed consumer included, closes the connection,
        # which is how the server learns to stop generating.
        async with stream:
            async for chunk in stream:
                if not chunk.choices:
                    continue  # e.g. a usage summary
                choice = chunk.choices[0]
                finished = finished or choice.finish_reason is not None
                content = choice.delta.content if choice.delta is not None else None
                if content or choice.finish_reason:
                    yield content or "", choice.finish_reason
        if not finished:
            raise IncompleteReply(f"{self.options.base_url} ended the reply without finishing it")


def api_key(options: OpenAIOptions) -> str:
    """The key named by `api_key_env`; a missing one is an error unless the server is local."""
    if options.api_key_env is None:
        return NO_KEY
    key = os.environ.get(options.api_key_env, "").strip()
    if key:
        return key
    if is_loopback(options.base_url):
        return NO_KEY
    raise ValueError(
        f"generator backend 'openai': environment variable {options.api_key_env} is not set; "
        f"it must hold the API key for {options.base_url} (or set api_key_env: null for an "
        "endpoint that takes no key)"
    )


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _retryable(error: Exception) -> bool:
    from openai import APIConnectionError, APIStatusError

    if isinstance(error, APIStatusError):
        return error.status_code in RETRY_STATUSES
    # Connection errors include timeouts; an incomplete stream here never gave text.
    return isinstance(error, APIConnectionError | IncompleteReply)
