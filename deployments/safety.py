"""SafetyClassifier: the crisis-risk model behind a batched Serve deployment."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray import serve

from deployments.device import pick_device
from haven import metrics
from haven.logging_context import send_to_serve_log
from haven.risk import Assessment, RiskLevel
from models.safety.pipeline import combine, context_text, earlier_texts

logger = logging.getLogger(__name__)


class SafetyOptions(BaseModel):
    """Which classifier runs and how; swapping models needs only these settings."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    # default: MiniLM + the head at head_path (None: the committed head);
    # huggingface: any local sequence-classification folder at model_path;
    # cascade: default, then all-mpnet-base-v2 (model_path, None: the one prepared at setup) with
    # second_head_path for the texts MiniLM gives P(high or above) >= cascade_gate; of those, the
    # ones in a trained language other than English go to multilingual-e5-small with
    # languages_head_path instead, unless cascade_languages is off.
    model: Literal["default", "huggingface", "cascade"] = "default"
    head_path: str | None = None
    model_path: str | None = None
    second_head_path: str | None = None
    # The second reader's thresholds; None: its head's own.
    second_thresholds: dict[RiskLevel, float] | None = None
    cascade_gate: float = Field(default=0.05, ge=0.0, le=1.0)
    cascade_languages: bool = True
    languages_head_path: str | None = None
    # The multilingual reader's thresholds; None: its head's own.
    languages_thresholds: dict[RiskLevel, float] | None = None
    # The Hugging Face model's label names -> risk levels; None: labels named after the levels.
    label_map: dict[str, RiskLevel] | None = None
    # Level -> minimum P(that level or above); None: the head's own (argmax for other models).
    thresholds: dict[RiskLevel, float] | None = None
    device: str = "auto"
    threads: int | None = Field(default=None, ge=1)
    max_batch_size: int = Field(default=32, ge=1)
    batch_wait_timeout_s: float = Field(default=0.005, ge=0)
    # Own readings of recent messages, by a digest of their text (never the text): a turn's
    # earlier messages were read on their own turns, so the trajectory seldom costs a model pass.
    readings_cache: int = Field(default=4096, ge=0)

    @model_validator(mode="after")
    def _check(self) -> SafetyOptions:
        if self.model == "huggingface" and not self.model_path:
            raise ValueError("safety.model 'huggingface' needs safety.model_path")
        for name in ("thresholds", "second_thresholds", "languages_thresholds"):
            if RiskLevel.NONE in (getattr(self, name) or {}):
                raise ValueError(f"safety.{name}: 'none' is what is left when no level is reached")
        cascade_only = (
            self.second_head_path,
            self.second_thresholds,
            self.languages_head_path,
            self.languages_thresholds,
        )
        if self.model != "cascade" and any(cascade_only):
            raise ValueError(
                "safety.second_head_path, second_thresholds, languages_head_path and "
                "languages_thresholds are for 'cascade'"
            )
        return self


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=256)
class SafetyClassifier:
    def __init__(
        self, options: SafetyOptions, model_cache_dir: Path = Path(".cache/models")
    ) -> None:
        from models.safety.loading import load_risk_model

        send_to_serve_log()
        self._model = load_risk_model(
            options.model,
            model_path=options.model_path,
            head_path=options.head_path,
            label_map={k: v.value for k, v in (options.label_map or {}).items()} or None,
            thresholds=_by_name(options.thresholds),
            device=pick_device(options.device),
            threads=options.threads,
            second_head_path=options.second_head_path,
            second_thresholds=_by_name(options.second_thresholds),
            gate=options.cascade_gate,
            model_cache_dir=model_cache_dir,
            languages=options.cascade_languages,
            languages_head_path=options.languages_head_path,
            languages_thresholds=_by_name(options.languages_thresholds),
        )
        # @serve.batch wraps the method in an object with these setters; its stubs don't say so.
        self._assess_batch.set_max_batch_size(options.max_batch_size)  # type: ignore[attr-defined]
        self._assess_batch.set_batch_wait_timeout_s(options.batch_wait_timeout_s)  # type: ignore[attr-defined]
        self._readings: OrderedDict[str, Assessment] = OrderedDict()
        self._readings_size = options.readings_cache

    async def assess(self, text: str, context: list[str], turn_id: str | None = None) -> Assessment:
        """The message read alone, after the person's last few messages, and in the trajectory
        of their earlier messages' own readings (`models.safety.pipeline.combine`); timed
        (haven_classifier_message_seconds) and logged under `turn_id`."""
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

    async def assess_many(self, items: list[tuple[str, list[str], str | None]]) -> list[Assessment]:
        """`assess(text, context, turn_id)` for each item, in order, in one handle call.

        Serve's request path costs the replica more CPU per call than the model costs per message
        (docs/benchmarks.md), so the hosts send concurrent turns together
        (`deployments.clients.ServeRiskAssessor`). Each item still takes the per-turn path, timed
        and logged on its own; their texts meet in the same `@serve.batch` model calls."""
        return list(
            await asyncio.gather(
                *(self.assess(text, context, turn_id) for text, context, turn_id in items)
            )
        )

    async def _assess(self, text: str, context: list[str]) -> Assessment:
        """Every text the turn needs (the message, the joined text, earlier messages not in the
        readings cache) goes to the model in one batched call."""
        joined = context_text(text, context)
        earlier = earlier_texts(context)
        keys = [_digest(t) for t in earlier]
        known = [self._readings.get(k) for k in keys]
        missing = [t for t, a in zip(earlier, known, strict=True) if a is None]
        needed = [text, *([joined] if joined is not None else []), *missing]
        results = await self._assess_batch(needed)
        alone, rest = results[0], iter(results[1:])
        in_context = next(rest) if joined is not None else None
        readings = [a if a is not None else next(rest) for a in known]
        for key, reading in zip(keys, readings, strict=True):
            self._remember(key, reading)
        self._remember(_digest(text), alone)
        return combine(text, context, alone, in_context, readings)

    def _remember(self, key: str, reading: Assessment) -> None:
        if self._readings_size == 0:
            return
        self._readings[key] = reading
        self._readings.move_to_end(key)
        while len(self._readings) > self._readings_size:
            self._readings.popitem(last=False)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _assess_batch(self, requests: list[list[str]]) -> list[list[Assessment]]:
        # One model call for the texts of every turn in the batch; the call blocks for
        # milliseconds, so it runs off the replica's event loop.
        texts = [t for request in requests for t in request]
        reread_before = getattr(self._model, "reread", 0)
        started = time.perf_counter()
        assessments = await asyncio.to_thread(self._model.assess, texts)
        # A cascade counts the texts its second reader read again (models/safety/cascade.py).
        reread = getattr(self._model, "reread", 0) - reread_before
        metrics.classifier_batch(len(texts), time.perf_counter() - started, reread)
        out, start = [], 0
        for request in requests:
            out.append(assessments[start : start + len(request)])
            start += len(request)
        return out

    async def ready(self) -> bool:
        return True


def _by_name(thresholds: dict[RiskLevel, float] | None) -> dict[str, float] | None:
    return {k.value: v for k, v in thresholds.items()} if thresholds else None


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
