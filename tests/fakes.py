"""Small in-process stand-ins for the model deployments, behind the same interfaces."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from haven.backends import ReplyRequest
from haven.risk import RISK_LEVELS, Assessment, RiskLevel

CRISIS_WORD = "CRISIS"
BREAK_CLASSIFIER = "BREAK-CLASSIFIER"
BREAK_GENERATOR = "BREAK-GENERATOR"
SLOW = "SLOW"


class FakeAssessor:
    """High risk for messages containing CRISIS; fails on BREAK-CLASSIFIER."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    async def assess(self, text: str, context: Sequence[str]) -> Assessment:
        self.calls.append((text, list(context)))
        if BREAK_CLASSIFIER in text:
            raise RuntimeError("classifier replica died")
        level = RiskLevel.HIGH if CRISIS_WORD in text else RiskLevel.NONE
        probabilities = {name: 0.0 for name in RISK_LEVELS} | {level.value: 1.0}
        return Assessment(risk_level=level, probabilities=probabilities, model_id="fake")


class FakeGenerator:
    """Streams a fixed reply in pieces; fails mid-stream when the user wrote BREAK-GENERATOR."""

    PIECES = ("I hear ", "you. ", "That sounds ", "hard.")

    def __init__(self) -> None:
        self.requests: list[ReplyRequest] = []

    async def stream(self, request: ReplyRequest) -> AsyncIterator[str]:
        self.requests.append(request)
        last = request.history[-1].text
        for index, piece in enumerate(self.PIECES):
            if BREAK_GENERATOR in last and index == 2:
                raise RuntimeError("model crashed")
            await asyncio.sleep(0.05 if SLOW in last else 0)
            yield piece

    @classmethod
    def full_text(cls) -> str:
        return "".join(cls.PIECES)
