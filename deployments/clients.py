"""The turn's model interfaces (`haven.backends`) over Ray Serve deployment handles.

Each call passes the id of the turn it serves (`turn_id=`), so the replicas' log lines carry it:
Serve's own request id is new at every call from a ConnectionHost, a plain Ray actor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import cast

from ray.exceptions import RayTaskError
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from haven.backends import ReplyRequest
from haven.errors import HavenError
from haven.logging_context import current_turn_id
from haven.risk import Assessment


class ServeRiskAssessor:
    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle

    async def assess(self, text: str, context: Sequence[str]) -> Assessment:
        result: Assessment = await self._handle.assess.remote(
            text, list(context), turn_id=current_turn_id()
        )
        return result


class _ServeReplyStream:
    """A reply streaming from the ResponseGenerator: its first item is the intent."""

    def __init__(self, response: DeploymentResponseGenerator, intent: str) -> None:
        self._response = response
        self._intent = intent

    @property
    def intent(self) -> str:
        return self._intent

    async def _pieces(self) -> AsyncIterator[str]:
        async for piece in self._response:
            yield piece

    def __aiter__(self) -> AsyncIterator[str]:
        return self._pieces()

    async def aclose(self) -> None:
        # Cancelling the call raises in the replica's generator, which stops the model.
        self._response.cancel()


class ServeReplyGenerator:
    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle.options(stream=True)

    async def open(self, request: ReplyRequest) -> _ServeReplyStream:
        response = cast(
            DeploymentResponseGenerator,
            self._handle.generate.remote(request, turn_id=current_turn_id()),
        )
        try:
            intent = await anext(response)
        except RayTaskError as error:
            # A typed refusal (busy) raised in the replica comes back wrapped; unwrap it.
            if isinstance(error.cause, HavenError):
                raise error.cause from None
            raise
        return _ServeReplyStream(response, str(intent))
