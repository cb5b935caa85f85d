"""What a turn needs from the models, independent of where they run.

The ConnectionActor talks to these two interfaces only. On Ray Serve they are adapters over
deployment handles (`deployments.clients`); in tests, small in-process fakes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from haven.risk import Assessment


class ChatTurn(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["user", "assistant"]
    text: str


class ReplyRequest(BaseModel):
    """One reply to generate: the conversation so far (newest last) and how to answer it."""

    model_config = ConfigDict(frozen=True)

    history: list[ChatTurn]
    intent: str
    risk_level: str


class RiskAssessor(Protocol):
    async def assess(self, text: str, context: Sequence[str]) -> Assessment:
        """Risk of `text`, read in the light of the person's earlier messages `context`."""
        ...


class ReplyGenerator(Protocol):
    def stream(self, request: ReplyRequest) -> AsyncIterator[str]:
        """The reply as text pieces, in order, as the model produces them."""
        ...
