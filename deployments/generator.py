"""ResponseGenerator: a streaming language model behind a Serve deployment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from ray import serve

from deployments.device import pick_device
from haven.backends import ReplyRequest
from haven.settings import Settings


class GeneratorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A local Hugging Face causal-LM folder; None: the model prepared by `make setup`.
    model_path: str | None = None
    device: str = "auto"
    threads: int | None = Field(default=None, ge=1)
    max_prompt_tokens: int = Field(default=1536, ge=64)
    max_new_tokens: int = Field(default=160, ge=1, le=4096)
    temperature: float = Field(default=0.7, ge=0)  # 0: greedy
    top_p: float = Field(default=0.9, gt=0, le=1)
    repetition_penalty: float = Field(default=1.15, ge=1)


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=16)
class ResponseGenerator:
    def __init__(self, options: GeneratorOptions, settings: Settings) -> None:
        from models.llm.generation import GenerationParams, TransformersBackend
        from models.llm.prepare import is_prepared, model_dir

        if options.model_path:
            path = Path(options.model_path)
            found = (path / "config.json").is_file()
        else:
            path = model_dir(settings.model_cache_dir)
            found = is_prepared(path)
        if not found:
            # Weights are prepared at setup, never fetched while serving.
            raise RuntimeError(
                f"No language model at {path}; run `make setup` (python -m models.llm.prepare)"
            )
        self._options = options
        self._settings = settings
        self._backend = TransformersBackend.load(
            path, device=pick_device(options.device), threads=options.threads
        )
        self._params = GenerationParams(
            max_new_tokens=options.max_new_tokens,
            temperature=options.temperature,
            top_p=options.top_p,
            repetition_penalty=options.repetition_penalty,
        )

    async def generate(self, request: ReplyRequest) -> AsyncIterator[str]:
        from models.llm.prompt import build_messages

        messages = build_messages(
            request.history,
            intent=request.intent,
            risk_level=request.risk_level,
            tokenizer=self._backend.tokenizer,
            max_prompt_tokens=self._options.max_prompt_tokens,
            crisis_hotline=self._settings.crisis_hotline,
            crisis_text=self._settings.crisis_text,
        )
        # Closing the stream when the caller goes away stops the model at the next token.
        async with aclosing(self._backend.stream(messages, self._params)) as pieces:
            async for piece in pieces:
                yield piece

    async def ready(self) -> bool:
        return True
