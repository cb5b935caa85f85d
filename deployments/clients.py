"""The turn's model interfaces (`haven.backends`) over Ray Serve deployment handles.

Each call passes the id of the turn it serves (`turn_id=`; for the classifier, one per turn the
call carries), so the replicas' log lines carry it: Serve's own request id is new at every call
from a ConnectionHost, a plain Ray actor.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import cast

from ray.exceptions import RayTaskError
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from haven.backends import ReplyRequest
from haven.call_coalescer import CallCoalescer
from haven.errors import HavenError
from haven.logging_context import current_turn_id
from haven.risk import Assessment

# (message, earlier messages, turn id): one turn's part of `SafetyClassifier.assess_many`.
AssessItem = tuple[str, list[str], str | None]


class ServeRiskAssessor:
    """Concurrent turns' assessments go to the classifier together, `max_in_flight` calls at
    most, `max_items` turns each (`haven.call_coalescer`): Serve's request path costs the replica
    milliseconds of CPU per call whatever it carries, so a call per turn left the model idle
    and its batches small (docs/benchmarks.md). A turn with no call out is sent at once."""

    def __init__(self, handle: DeploymentHandle, *, max_in_flight: int, max_items: int) -> None:
        self._handle = handle
        self._calls: CallCoalescer[AssessItem, Assessment] = CallCoalescer(
            self._send, max_in_flight=max_in_flight, max_items=max_items
        )

    async def assess(self, text: str, context: Sequence[str]) -> Assessment:
        # Read here, in the turn's own task: the shared call runs outside every turn.
        return await self._calls.submit((text, list(context), current_turn_id()))

    async def _send(self, items: list[AssessItem]) -> list[Assessment]:
        response = self._handle.assess_many.remote(items)
        try:
            result: list[Assessment] = await response
        except asyncio.CancelledError:
            # Every turn in the call gave up waiting: stop the work in the replica too.
            response.cancel()
            raise
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
