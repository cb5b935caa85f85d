"""SafetyClassifier: the crisis-risk model behind a batched Serve deployment."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from ray import serve

from deployments.device import pick_device
from haven.risk import Assessment, RiskLevel

# How many earlier messages of the person are read together with the new one.
CONTEXT_MESSAGES = 3


class SafetyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    head_path: str | None = None  # None: the head committed with the project
    device: str = "auto"
    threads: int | None = Field(default=None, ge=1)
    max_batch_size: int = Field(default=32, ge=1)
    batch_wait_timeout_s: float = Field(default=0.005, ge=0)


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=256)
class SafetyClassifier:
    def __init__(self, options: SafetyOptions) -> None:
        from models.safety.classifier import SafetyModel

        self._model = SafetyModel.load(
            Path(options.head_path) if options.head_path else None,
            device=pick_device(options.device),
            threads=options.threads,
        )
        # @serve.batch wraps the method in an object with these setters; its stubs don't say so.
        self._assess_batch.set_max_batch_size(options.max_batch_size)  # type: ignore[attr-defined]
        self._assess_batch.set_batch_wait_timeout_s(options.batch_wait_timeout_s)  # type: ignore[attr-defined]

    async def assess(self, text: str, context: list[str]) -> Assessment:
        """The new message alone, and read after the person's last few messages: the higher
        of the two, so that "ok" after a described plan is still taken seriously."""
        recent = context[-CONTEXT_MESSAGES:]
        if not recent:
            return await self._assess_batch(text)
        alone, in_context = await asyncio.gather(
            self._assess_batch(text), self._assess_batch("\n".join([*recent, text]))
        )
        return max(alone, in_context, key=lambda a: RiskLevel(a.risk_level).rank)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _assess_batch(self, texts: list[str]) -> list[Assessment]:
        # The model call blocks for milliseconds; keep the replica's event loop free meanwhile.
        return await asyncio.to_thread(self._model.assess, texts)

    async def ready(self) -> bool:
        return True
