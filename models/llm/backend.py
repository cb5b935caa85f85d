"""What every language-model backend offers, local or remote, and the sampling settings it takes.

Kept free of torch and transformers so that a replica serving a remote endpoint never imports them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from models.llm.admission import Admission, AdmissionQueue


class GenerationParams(BaseModel):
    """How one reply is sampled. `temperature=0` decodes greedily."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_new_tokens: int = Field(default=160, ge=1, le=4096)
    temperature: float = Field(default=0.7, ge=0.0, le=5.0)
    top_p: float = Field(default=0.9, gt=0.0, le=1.0)
    repetition_penalty: float = Field(default=1.15, ge=1.0, le=3.0)
    seed: int | None = None


class ChatBackend(Protocol):
    """A model that streams one reply to a list of chat messages as text pieces."""

    @property
    def tokenizer(self) -> Any:
        """The tokenizer that measures prompts, or None where only an estimate is possible."""
        ...

    @property
    def queue(self) -> AdmissionQueue:
        """Requests running and waiting on this backend."""
        ...

    def admit(self) -> Admission:
        """A place in this backend's queue; raises `haven.errors.Busy` at once when it is full."""
        ...

    def stream(
        self,
        messages: Sequence[dict[str, str]],
        params: GenerationParams,
        admission: Admission | None = None,
        cache_key: str | None = None,
    ) -> AsyncGenerator[str, None]:
        """The reply as non-empty text pieces. Admits the request itself when `admission` is None.

        `cache_key` names the conversation (its session): a backend may keep model state under
        it for the next turn. Closing the iterator stops the model; an error of the model
        propagates out of it.
        """
        ...

    def forget(self, cache_key: str) -> bool:
        """Drop anything kept under `cache_key` (its session was deleted); True if there was."""
        ...

    def close(self) -> None:
        """Stop whatever is running; called when the replica shuts down."""
        ...

    async def aclose(self) -> None:
        """`close`, then release connections and other resources that need the event loop."""
        ...
