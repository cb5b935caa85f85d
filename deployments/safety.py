"""SafetyClassifier: the crisis-risk model behind a batched Serve deployment."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray import serve

from deployments.device import pick_device
from haven import metrics
from haven.logging_context import send_to_serve_log
from haven.risk import Assessment, RiskLevel
from models.safety.pipeline import combine, context_text

logger = logging.getLogger(__name__)


class SafetyOptions(BaseModel):
    """Which classifier runs and how; swapping models needs only these settings."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    # default: MiniLM + the head at head_path (None: the committed head);
    # huggingface: any local sequence-classification folder at model_path.
    model: Literal["default", "huggingface"] = "default"
    head_path: str | None = None
    model_path: str | None = None
    # The Hugging Face model's label names -> risk levels; None: labels named after the levels.
    label_map: dict[str, RiskLevel] | None = None
    # Level -> minimum P(that level or above); None: the head's own (argmax for other models).
    thresholds: dict[RiskLevel, float] | None = None
    device: str = "auto"
    threads: int | None = Field(default=None, ge=1)
    max_batch_size: int = Field(default=32, ge=1)
    batch_wait_timeout_s: float = Field(default=0.005, ge=0)

    @model_validator(mode="after")
    def _check(self) -> SafetyOptions:
        if self.model == "huggingface" and not self.model_path:
            raise ValueError("safety.model 'huggingface' needs safety.model_path")
        if self.thresholds and RiskLevel.NONE in self.thresholds:
            raise ValueError("safety.thresholds: 'none' is what is left when no level is reached")
        return self


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=256)
class SafetyClassifier:
    def __init__(self, options: SafetyOptions) -> None:
        from models.safety.loading import load_risk_model

        send_to_serve_log()
        self._model = load_risk_model(
            options.model,
            model_path=options.model_path,
            head_path=options.head_path,
            label_map={k: v.value for k, v in (options.label_map or {}).items()} or None,
            thresholds={k.value: v for k, v in options.thresholds.items()}
            if options.thresholds
            else None,
            device=pick_device(options.device),
            threads=options.threads,
        )
        # @serve.batch wraps the method in an object with these setters; its stubs don't say so.
        self._assess_batch.set_max_batch_size(options.max_batch_size)  # type: ignore[attr-defined]
        self._assess_batch.set_batch_wait_timeout_s(options.batch_wait_timeout_s)  # type: ignore[attr-defined]

    async def assess(self, text: str, context: list[str], turn_id: str | None = None) -> Assessment:
        """`_assess`, timed (haven_classifier_message_seconds) and logged under `turn_id`."""
        started = time.perf_counter()
        assessment = await self._assess(text, context)
        seconds = time.perf_counter() - started
        metrics.classifier_message(seconds)
        logger.info(
            "risk assessed: %s",
            assessment.risk_level.value,
            extra={
                "turn_id": turn_id,
                "risk_level": assessment.risk_level.value,
                "raised_by": assessment.raised_by,
                "seconds": round(seconds, 4),
            },
        )
        return assessment

    async def _assess(self, text: str, context: list[str]) -> Assessment:
        """The new message alone, and read after the person's last few messages: the higher
        of the two, so that "ok" after a described plan is still taken seriously; then the
        rule layer, which can only raise the level."""
        joined = context_text(text, context)
        if joined is None:
            return combine(text, context, await self._assess_batch(text), None)
        alone, in_context = await asyncio.gather(
            self._assess_batch(text), self._assess_batch(joined)
        )
        return combine(text, context, alone, in_context)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _assess_batch(self, texts: list[str]) -> list[Assessment]:
        # The model call blocks for milliseconds; keep the replica's event loop free meanwhile.
        started = time.perf_counter()
        assessments = await asyncio.to_thread(self._model.assess, texts)
        metrics.classifier_batch(len(texts), time.perf_counter() - started)
        return assessments

    async def ready(self) -> bool:
        return True
