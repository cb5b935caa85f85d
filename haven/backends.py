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
    # None: the generator's intent planner chooses from the conversation. The safety policy
    # sets it ("safety_check_in") when the risk calls for it.
    intent: str | None = None
    risk_level: str = "none"
    # The conversation this reply belongs to: the generator may keep the model state of its
    # prompt for the next turn, and drops it when the session is deleted.
    session_id: str | None = None


class ReplyStream(Protocol):
    """One reply being generated: the intent it carries out, then its text pieces in order.

    Closing the stream (`aclose`) stops the model: that is how a reply is cancelled.
    """

    @property
    def intent(self) -> str: ...

    def __aiter__(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


class RiskAssessor(Protocol):
    async def assess(self, text: str, context: Sequence[str]) -> Assessment:
        """Risk of `text`, read in the light of the person's earlier messages `context`."""
        ...


class ReplyGenerator(Protocol):
    async def open(self, request: ReplyRequest) -> ReplyStream:
        """Starts a reply. Raises `haven.errors.Busy` at once when the model's queue is full."""
        ...
