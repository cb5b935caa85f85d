"""Continuous batching: every reply in flight advances one token per forward pass, together.

One worker thread owns the model. Each pass of its loop reads a slice of the prompts that have
arrived (chunked prefill, so a long prompt never stalls the replies being written for long),
then decodes one token for every reply in the batch. A reply joins the batch as soon as its
prompt is read and leaves it the moment it ends, is cancelled or fails; nobody waits for
another person's reply to finish.

transformers 5.24 ships a continuous-batching manager (`generate_batch`,
`init_continuous_batching`), measured on this 2-core CPU at about half the aggregate tokens/s
of padded `generate` at 8 and 16 requests (DESIGN.md). It also applies one generation config to
every request, while Haven needs each reply's own seed, stop rules and repetition penalty over
that person's conversation, and a stop flag checked between passes. This loop is the small
version of what it does, over the library's cache classes.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch
from transformers import DynamicCache

from models.llm.decoding import set_threads
from models.llm.kv_batch import BatchKV, LayerKV
from models.llm.prefix_cache import PrefixCache
from models.llm.sampling import Sampler, sample

logger = logging.getLogger(__name__)


class Phase(Enum):
    """Where one reply is in the batcher."""

    WAITING = "waiting"  # submitted; starts when the batch has room for its tokens
    PREFILLING = "prefilling"  # its prompt is being read
    DECODING = "decoding"  # in the batch, one token per pass
    FINISHED = "finished"  # ended, stopped or failed; END has been emitted


class End:
    """Emitted after a reply's last token (or its error)."""


END = End()
Item = int | Exception | End


@dataclass(eq=False)
class Reply:
    """One reply as the worker thread sees it. `emit` hands items to the reply's consumer."""

    prompt_ids: list[int]
    sampler: Sampler
    max_new_tokens: int
    emit: Callable[[Item], None]
    # Session the prompt belongs to: its prompt prefix is kept under this key for the next turn.
    cache_key: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    phase: Phase = Phase.WAITING
    cache: Any = None
    filled: int = 0
    tokens: list[int] = field(default_factory=list)

    @property
    def reserved_tokens(self) -> int:
        return len(self.prompt_ids) + self.max_new_tokens


@dataclass(frozen=True)
class BatchLimits:
    max_batch_size: int = 16
    max_tokens_in_flight: int = 16384
    # Prompt tokens read per pass of the loop, in chunks of `prefill_chunk`, before the batch
    # takes its next step: more makes first tokens come sooner, and the running replies wait.
    prefill_chunk: int = 64
    prefill_tokens_per_pass: int = 128


class ContinuousBatcher:
    """Decodes every submitted reply on one worker thread, batched."""

    def __init__(
        self,
        model: Any,
        *,
        device: torch.device,
        stop_ids: frozenset[int],
        finished: Callable[[Reply], bool],
        limits: BatchLimits,
        prefix_cache: PrefixCache | None = None,
        threads: int | None = None,
    ) -> None:
        """`finished(reply)`: whether a reply that has not hit a stop token should end now."""
        self._model = model
        self._device = device
        self.stop_ids = stop_ids
        self.finished = finished
        self.limits = limits
        self.prefix_cache = prefix_cache
        self._threads = threads
        self._wake = threading.Condition()
        self._inbox: deque[Reply] = deque()
        self._closed = False
        self._waiting: deque[Reply] = deque()
        self._prefilling: deque[Reply] = deque()
        self._decoding: list[Reply] = []
        self._kv = BatchKV()
        self._ended: list[tuple[Reply, Exception | None]] = []
        self._thread = threading.Thread(target=self._run, name="llm-batch", daemon=True)
        self._thread.start()

    @property
    def in_flight(self) -> int:
        """Replies prefilling or decoding."""
        return len(self._prefilling) + len(self._decoding)

    @property
    def batch_size(self) -> int:
        return len(self._decoding)

    def submit(self, reply: Reply) -> None:
        with self._wake:
            if self._closed:
                raise RuntimeError("the language model is shutting down")
            self._inbox.append(reply)
            self._wake.notify()

    def cancel(self, reply: Reply) -> None:
        """Stop `reply` at the next pass; END follows once it has left the batch."""
        reply.stop.set()
        with self._wake:
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()

    def _run(self) -> None:
        set_threads(self._threads)
        while True:
            with self._wake:
                while not self._closed and not (
                    self._inbox or self._waiting or self._prefilling or self._decoding
                ):
                    self._wake.wait()
                if self._closed:
                    break
                self._waiting.extend(self._inbox)
                self._inbox.clear()
            try:
                self._pass()
            finally:
                self._announce_ended()
        stopped = RuntimeError("the language model shut down")
        with self._wake:
            self._waiting.extend(self._inbox)
            self._inbox.clear()
        for reply in [*self._waiting, *self._prefilling, *self._decoding]:
            self._end(reply, stopped)
        self._waiting.clear()
        self._prefilling.clear()
        self._decoding.clear()
        self._kv.clear()
        self._announce_ended()

    def _pass(self) -> None:
        self._drop_stopped()
        self._start_waiting()
        budget = self.limits.prefill_tokens_per_pass
        while self._prefilling and budget > 0:
            budget -= self._prefill_chunk(self._prefilling[0])
            # Between any two forward passes: a cancelled reply leaves within one pass.
            self._drop_stopped()
            self._announce_ended()
        if self._decoding:
            self._decode_step()

    def _start_waiting(self) -> None:
        limits = self.limits
        reserved = sum(r.reserved_tokens for r in [*self._prefilling, *self._decoding])
        while self._waiting:
            reply = self._waiting[0]
            if self.in_flight >= limits.max_batch_size:
                return
            # A reply larger than the whole budget still runs, alone: refusing it forever
            # would be worse than running it over the bound.
            over = reserved + reply.reserved_tokens > limits.max_tokens_in_flight
            if over and self.in_flight:
                return
            self._waiting.popleft()
            reserved += reply.reserved_tokens
            reply.phase = Phase.PREFILLING
            self._prefilling.append(reply)

    def _prefill_chunk(self, reply: Reply) -> int:
        """Read the next chunk of `reply`'s prompt; returns the number of tokens read."""
        try:
            if reply.cache is None:
                self._reuse_prefix(reply)
            ids = reply.prompt_ids
            start = reply.filled
            end = min(start + self.limits.prefill_chunk, len(ids))
            with torch.inference_mode():
                out = self._model(
                    input_ids=torch.tensor([ids[start:end]], dtype=torch.long, device=self._device),
                    cache=reply.cache,
                    use_cache=True,
                    logits_to_keep=1,
                )
            reply.cache = out.cache
            reply.filled = end
            if end == len(ids):
                self._prefilling.popleft()
                self._keep_prefix(reply)
                token = sample(out.logits[:, -1, :], [reply.sampler])[0]
                if not self._advance(reply, token):
                    reply.phase = Phase.DECODING
                    self._kv.add(_layers(reply.cache))
                    self._decoding.append(reply)
                reply.cache = None
            return end - start
        except Exception as error:
            # Only this reply's pass failed: the batch goes on without it.
            logger.exception("reading a prompt failed")
            if reply in self._prefilling:
                self._prefilling.remove(reply)
            self._end(reply, error)
            return self.limits.prefill_chunk

    def _reuse_prefix(self, reply: Reply) -> None:
        reused, layers = 0, list[LayerKV]()
        if self.prefix_cache is not None:
            reused, layers = self.prefix_cache.lookup(reply.prompt_ids)
        # DynamicCache copies the kept tensors, so the cache entry is never written to.
        reply.cache = DynamicCache(ddp_cache_data=layers) if reused else None
        reply.filled = reused

    def _keep_prefix(self, reply: Reply) -> None:
        if self.prefix_cache is None or reply.cache is None or reply.cache_key is None:
            return
        try:
            self.prefix_cache.store(reply.cache_key, reply.prompt_ids, _layers(reply.cache))
        except Exception:
            # A reply without a kept prefix is only slower next turn.
            logger.exception("keeping a prompt prefix failed")

    def _decode_step(self) -> None:
        replies = self._decoding
        device = self._device
        try:
            input_ids = torch.tensor([[r.tokens[-1]] for r in replies], device=device)
            positions = torch.tensor(
                [[len(r.prompt_ids) + len(r.tokens) - 1] for r in replies], device=device
            )
            with torch.inference_mode():
                out = self._model(
                    input_ids=input_ids,
                    attention_mask=self._kv.attention_mask(device),
                    position_ids=positions,
                    cache=self._kv.cache,
                    use_cache=True,
                )
            self._kv.sync_length()
            tokens = sample(out.logits[:, -1, :], [r.sampler for r in replies])
        except Exception as error:
            # The pass all of them shared failed: each of them ends with the error.
            logger.exception("a batched decoding step failed")
            for reply in replies:
                self._end(reply, error)
            self._decoding = []
            self._kv.clear()
            return
        kept = []
        for row, (reply, token) in enumerate(zip(replies, tokens, strict=True)):
            try:
                ended = self._advance(reply, token)
            except Exception as error:
                self._end(reply, error)
                ended = True
            if not ended:
                kept.append(row)
        if len(kept) < len(replies):
            self._decoding = [replies[row] for row in kept]
            self._kv.keep(kept)

    def _advance(self, reply: Reply, token: int) -> bool:
        """Take `token` as `reply`'s next; True when the reply has ended."""
        if token in self.stop_ids:
            self._end(reply)
            return True
        reply.tokens.append(token)
        reply.sampler.penalise(token)
        reply.emit(token)
        if len(reply.tokens) >= reply.max_new_tokens or reply.stop.is_set() or self.finished(reply):
            self._end(reply)
            return True
        return False

    def _drop_stopped(self) -> None:
        for queue in (self._waiting, self._prefilling):
            for reply in [r for r in queue if r.stop.is_set()]:
                queue.remove(reply)
                self._end(reply)
        stopped = [row for row, r in enumerate(self._decoding) if r.stop.is_set()]
        if stopped:
            leaving = [self._decoding[row] for row in stopped]
            kept = [row for row in range(len(self._decoding)) if row not in stopped]
            self._decoding = [self._decoding[row] for row in kept]
            self._kv.keep(kept)
            for reply in leaving:
                self._end(reply)

    def _end(self, reply: Reply, error: Exception | None = None) -> None:
        """Mark `reply` finished; its consumer hears of it once it has left the batch."""
        if reply.phase is Phase.FINISHED:
            return
        reply.phase = Phase.FINISHED
        reply.cache = None
        self._ended.append((reply, error))

    def _announce_ended(self) -> None:
        """Tell the consumers of replies that have ended (called once they left the batch)."""
        ended, self._ended = self._ended, []
        for reply, error in ended:
            if error is not None:
                reply.emit(error)
            reply.emit(END)


def _layers(cache: Any) -> list[LayerKV]:
    return [(layer.keys, layer.values) for layer in cache.layers]
