"""The turn's model interfaces (`haven.backends`) over Ray Serve deployment handles."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import cast

from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from haven.backends import ReplyRequest
from haven.risk import Assessment


class ServeRiskAssessor:
    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle

    async def assess(self, text: str, context: Sequence[str]) -> Assessment:
        result: Assessment = await self._handle.assess.remote(text, list(context))
        return result


class ServeReplyGenerator:
    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle.options(stream=True)

    async def stream(self, request: ReplyRequest) -> AsyncIterator[str]:
        pieces = cast(DeploymentResponseGenerator, self._handle.generate.remote(request))
        async for piece in pieces:
            yield piece
