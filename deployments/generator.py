"""ResponseGenerator: the language model behind a Serve deployment, local or remote.

`generate` streams, in order: the intent the reply carries out (str), then the reply's text
pieces. Which backend produces them (`backend:` in serve_config.yaml) is invisible to callers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray import serve

from deployments.device import pick_device
from haven import metrics
from haven.backends import ReplyRequest
from haven.logging_context import send_to_serve_log
from haven.metrics.reply_meter import ReplyMeter
from haven.settings import Settings
from models.llm.backend import ChatBackend, GenerationParams
from models.llm.candidates import ReplyChooser
from models.llm.openai_backend import OpenAIOptions
from models.llm.service import IntentPlanner, ReplyService

logger = logging.getLogger(__name__)


class GeneratorOptions(BaseModel):
    """The `generator:` block of the application's args in serve_config.yaml."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["transformers", "openai"] = "transformers"
    # transformers: a local Hugging Face causal-LM folder; None: the model `make setup` prepared.
    model_path: str | None = None
    # transformers without model_path: the support-tuned model (models/llm/MODEL_CARD.md);
    # false: SmolLM2-135M-Instruct as published, for comparison.
    tuned: bool = True
    device: str = "auto"
    threads: int | None = Field(default=None, ge=1)
    # openai: the endpoint; required with backend "openai".
    openai: OpenAIOptions | None = None
    max_prompt_tokens: int = Field(default=1536, ge=64)
    max_new_tokens: int = Field(default=160, ge=1, le=4096)
    temperature: float = Field(default=0.5, ge=0, le=5)  # 0: greedy
    top_p: float = Field(default=0.9, gt=0, le=1)
    repetition_penalty: float = Field(default=1.15, ge=1, le=3)
    # Replies waiting for the model beyond those running; past it a request gets `busy`.
    max_queued: int = Field(default=16, ge=0, le=10_000)
    # transformers: replies decoded together (continuous batching), and the most tokens
    # (prompt + max_new_tokens of each) they may hold in the batch at once.
    max_batch_size: int = Field(default=16, ge=1, le=1024)
    max_tokens_in_flight: int = Field(default=16384, ge=64)
    # transformers: prompt tokens read between two steps of the batch (first words sooner for
    # new replies, a short pause for the replies being written).
    prefill_tokens_per_pass: int = Field(default=128, ge=1)
    # transformers: model state of conversations' prompts kept for their next turn.
    prefix_cache_mb: int = Field(default=256, ge=0)
    prefix_cache_idle_s: float = Field(default=1800, gt=0)
    # Text written within this long of the last piece sent goes out with the next (0: off).
    coalesce_ms: float = Field(default=30, ge=0, le=1000)
    # A reply ends after this many sentences, or where it starts writing another turn (0: off).
    max_sentences: int = Field(default=4, ge=0, le=100)
    # Choose the intent of replies whose request leaves it open (models.intent.planner).
    planner: bool = True
    # Replies sampled per turn, the best one sent (models.llm.candidates), while batch places
    # are free; >1 sends the reply whole once all are written. None: 3 with transformers, 1 with
    # openai (each candidate would be a paid request).
    candidates: int | None = Field(default=None, ge=1, le=8)
    # Extra drafts only while the batch then holds at most this many replies (on a CPU each
    # reply in the batch slows the others: docs/benchmarks.md, "Best of three drafts").
    drafts_max_batch: int = Field(default=4, ge=1, le=1024)
    # Let the model write the reply at high risk (strict output screen, the line and a safety
    # question added when missing) instead of a reviewed reply. Only for a large model behind
    # the `openai` backend; refused with `transformers` (haven.safety_policy).
    trusted_at_high: bool = False
    # The same at medium risk (the line added when missing, a reply that agrees with the
    # person stopped). Trust at high includes medium. The local model, support-tuned, welcomed
    # or agreed with the wish to die in 16 of 60 medium replies (models/llm/MODEL_CARD.md).
    trusted_at_medium: bool = False

    @model_validator(mode="after")
    def _backend_is_configured(self) -> Self:
        if self.backend == "openai" and self.openai is None:
            raise ValueError(
                "generator backend 'openai' needs an `openai:` block (base_url, model)"
            )
        for level in ("high", "medium"):
            if getattr(self, f"trusted_at_{level}") and self.backend != "openai":
                raise ValueError(
                    f"generator `trusted_at_{level}: true` needs backend 'openai': the local "
                    f"model never writes the reply at {level} risk"
                )
        return self

    def reply_candidates(self) -> int:
        if self.candidates is not None:
            return self.candidates
        return 3 if self.backend == "transformers" else 1

    def params(self) -> GenerationParams:
        return GenerationParams(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            repetition_penalty=self.repetition_penalty,
        )


def build_backend(options: GeneratorOptions, settings: Settings) -> ChatBackend:
    # Imported per backend: a replica serving a remote model never loads torch's model code.
    if options.backend == "openai":
        from models.llm.openai_backend import OpenAIBackend

        assert options.openai is not None  # checked by GeneratorOptions
        return OpenAIBackend(options.openai, max_queued=options.max_queued)

    from models.llm.batcher import BatchLimits
    from models.llm.generation import TransformersBackend
    from models.llm.prepare import is_prepared, model_dir

    if options.model_path:
        path = Path(options.model_path)
        found = (path / "config.json").is_file()
    elif options.tuned:
        from models.llm.merge_adapter import adapter_digest, is_tuned_prepared, tuned_model_dir

        path = tuned_model_dir(settings.model_cache_dir)
        found = is_tuned_prepared(path, adapter_digest())
    else:
        path = model_dir(settings.model_cache_dir)
        found = is_prepared(path)
    if not found:
        # Weights are prepared at setup, never fetched while serving.
        raise RuntimeError(
            f"No language model at {path}; run `make setup` (python -m models.llm.prepare)"
        )
    return TransformersBackend.load(
        path,
        device=pick_device(options.device),
        threads=options.threads,
        max_queued=options.max_queued,
        limits=BatchLimits(
            max_batch_size=options.max_batch_size,
            max_tokens_in_flight=options.max_tokens_in_flight,
            prefill_tokens_per_pass=options.prefill_tokens_per_pass,
        ),
        prefix_cache_bytes=options.prefix_cache_mb * 2**20,
        prefix_cache_idle_s=options.prefix_cache_idle_s,
    )


def load_planner(options: GeneratorOptions) -> IntentPlanner:
    try:
        from models.intent.planner import IntentPlanner as Planner
    except ImportError as error:
        raise RuntimeError(
            "generator option `planner: true` needs models.intent.planner; set `planner: false` "
            "to give every open request the default intent"
        ) from error
    planner: IntentPlanner = Planner.load(
        device=pick_device(options.device), threads=options.threads
    )
    return planner


def load_chooser(options: GeneratorOptions, planner: IntentPlanner | None) -> ReplyChooser | None:
    """The chooser among candidate replies, sharing the planner's sentence encoder when it has
    one (the same MiniLM); None when one candidate is sampled."""
    if options.reply_candidates() < 2:
        return None
    encoder = getattr(planner, "encoder", None)
    if encoder is None:
        from models.safety.encoder import MiniLMEncoder

        encoder = MiniLMEncoder(device=pick_device(options.device), threads=options.threads)
    return ReplyChooser(encoder.encode)


def build_service(
    options: GeneratorOptions,
    settings: Settings,
    planner: IntentPlanner | None = None,
    chooser: ReplyChooser | None = None,
) -> ReplyService:
    """The replica's `ReplyService`: backend, planner and chooser as `options` say, unless given."""
    backend = build_backend(options, settings)
    if planner is None and options.planner:
        planner = load_planner(options)
    return ReplyService(
        backend,
        options.params(),
        max_prompt_tokens=options.max_prompt_tokens,
        crisis_hotline=settings.crisis_hotline,
        crisis_text=settings.crisis_text,
        planner=planner,
        coalesce_s=options.coalesce_ms / 1000,
        max_sentences=options.max_sentences,
        candidates=options.reply_candidates(),
        drafts_max_batch=options.drafts_max_batch,
        chooser=chooser if chooser is not None else load_chooser(options, planner),
    )


# max_ongoing_requests: the batch plus its queue (max_batch_size + max_queued), so that a full
# replica answers `busy` itself rather than Serve queueing requests in front of it.
@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=32)
class ResponseGenerator:
    def __init__(
        self,
        options: GeneratorOptions,
        settings: Settings,
        planner: IntentPlanner | None = None,
        chooser: ReplyChooser | None = None,
    ) -> None:
        """`planner`, `chooser`: ones to use instead of loading them (tests)."""
        send_to_serve_log()
        self._service = build_service(options, settings, planner, chooser)
        self._backend_name = options.backend
        self._count_tokens = _token_counter(self._service.backend.tokenizer)

    async def generate(
        self, request: ReplyRequest, turn_id: str | None = None
    ) -> AsyncGenerator[str, None]:
        """The intent the reply carries out, then its text pieces.

        Raises `haven.errors.Busy` before yielding anything when the model's queue is full. When
        the caller closes the stream, Serve cancels this generator and the model stops.
        `turn_id` only labels this reply's log line.
        """
        meter = ReplyMeter(self._count_tokens)
        intent_sent = False
        async with aclosing(self._service.generate(request)) as items:
            async for item in items:
                if intent_sent:
                    meter.piece(item)
                else:
                    meter.started()  # the intent comes first; the prompt goes to the model next
                intent_sent = True
                yield item
        # Reached only by a reply that ran to its end: not cancelled, no model error.
        tokens_per_s = meter.tokens_per_s()
        if tokens_per_s is not None:
            metrics.reply_generated(tokens_per_s, backend=self._backend_name)
        logger.info(
            "reply generated",
            extra={
                "turn_id": turn_id,
                "tokens_per_s": None if tokens_per_s is None else round(tokens_per_s, 2),
            },
        )

    async def ready(self) -> bool:
        return True

    async def forget(self, session_id: str) -> bool:
        """Drop the model state this replica keeps for a deleted session."""
        return self._service.forget(session_id)

    def __del__(self) -> None:
        # Serve calls this when the replica shuts down: stop a reply still being computed.
        service = getattr(self, "_service", None)
        if service is not None:
            service.backend.close()


def _token_counter(tokenizer: Any) -> Callable[[str], int] | None:
    """Counts a text's tokens with the model's own tokenizer; None for a remote model."""
    if tokenizer is None:
        return None

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count
