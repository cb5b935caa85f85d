"""Small in-process stand-ins for the model deployments, behind the same interfaces."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from haven.backends import ReplyRequest
from haven.errors import Busy
from haven.risk import RISK_LEVELS, Assessment, RiskLevel

# Words in a user's message that script the fakes.
MEDIUM_WORD = "MEDIUM-RISK"
CRISIS_WORD = "CRISIS"  # high
CRITICAL_WORD = "CRITICAL-RISK"
BREAK_CLASSIFIER = "BREAK-CLASSIFIER"
HANG_CLASSIFIER = "HANG-CLASSIFIER"
BREAK_GENERATOR = "BREAK-GENERATOR"
BUSY_GENERATOR = "BUSY-GENERATOR"
UNSAFE_GENERATOR = "UNSAFE-GENERATOR"
HOTLINE_GENERATOR = "HOTLINE-GENERATOR"
AGREEING_GENERATOR = "AGREEING-GENERATOR"
SLOW = "SLOW"
ENDLESS = "ENDLESS"

# What the scripted model says when asked to misbehave: means detail a reply must never carry.
UNSAFE_PIECES = (
    "I understand. ",
    "If you want to do it, ",
    "taking 40 of your sleeping pills ",
    "with alcohol would be enough. ",
    "Good luck.",
)

# What a small model was seen to write to everyday stress: a crisis line, unasked.
HOTLINE_PIECES = (
    "That sounds like a long day. ",
    "If it ever gets too much, call the crisis hotline at ",
    "988. ",
    "What helped you get through it?",
)

# What the small model was seen to say to "everyone would be better off without me".
AGREEING_PIECES = ("I think that ", "is a great idea. ", "Take care.")


class FakeAssessor:
    """Scripted levels by keyword; fails on BREAK-CLASSIFIER, never answers on HANG-CLASSIFIER."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.failures_left = 0  # the next this many calls fail, whatever the text

    async def assess(self, text: str, context: Sequence[str]) -> Assessment:
        self.calls.append((text, list(context)))
        if self.failures_left > 0:
            self.failures_left -= 1
            raise RuntimeError("classifier replica restarting")
        if BREAK_CLASSIFIER in text:
            raise RuntimeError("classifier replica died")
        if HANG_CLASSIFIER in text:
            await asyncio.Event().wait()
        level = RiskLevel.NONE
        for word, scripted in (
            (MEDIUM_WORD, RiskLevel.MEDIUM),
            (CRISIS_WORD, RiskLevel.HIGH),
            (CRITICAL_WORD, RiskLevel.CRITICAL),
        ):
            if any(word in message for message in [*context[-3:], text]):
                level = max(level, scripted, key=lambda lv: lv.rank)
        probabilities = {name: 0.0 for name in RISK_LEVELS} | {level.value: 1.0}
        return Assessment(
            risk_level=level, probabilities=probabilities, model_id="fake", model_version="1"
        )


class FakeReplyStream:
    def __init__(self, generator: FakeGenerator, request: ReplyRequest) -> None:
        self._generator = generator
        self._request = request
        self.closed = False

    @property
    def intent(self) -> str:
        return self._request.intent or "reflect"

    async def _pieces(self) -> AsyncIterator[str]:
        last = self._request.history[-1].text
        pieces = FakeGenerator.PIECES
        if UNSAFE_GENERATOR in last:
            pieces = UNSAFE_PIECES
        elif HOTLINE_GENERATOR in last:
            pieces = HOTLINE_PIECES
        elif AGREEING_GENERATOR in last:
            pieces = AGREEING_PIECES
        index = 0
        while True:
            if ENDLESS in last:
                piece = f"word{index} "
            elif index < len(pieces):
                piece = pieces[index]
            else:
                return
            if BREAK_GENERATOR in last and index == 2:
                raise RuntimeError("model crashed")
            await asyncio.sleep(0.05 if SLOW in last or ENDLESS in last else 0)
            self._generator.pieces_produced += 1
            yield piece
            index += 1

    def __aiter__(self) -> AsyncIterator[str]:
        return self._pieces()

    async def aclose(self) -> None:
        self.closed = True


class FakeGenerator:
    """Streams a fixed reply in pieces; scripted failures by keyword in the user's message."""

    PIECES = ("I hear ", "you. ", "That sounds ", "hard.")

    def __init__(self) -> None:
        self.requests: list[ReplyRequest] = []
        self.streams: list[FakeReplyStream] = []
        self.pieces_produced = 0
        # Sessions the Gateway said were deleted (`forget`).
        self.forgotten: list[str] = []

    async def forget(self, session_id: str) -> None:
        self.forgotten.append(session_id)

    async def open(self, request: ReplyRequest) -> FakeReplyStream:
        if BUSY_GENERATOR in request.history[-1].text:
            raise Busy()
        self.requests.append(request)
        stream = FakeReplyStream(self, request)
        self.streams.append(stream)
        return stream

    @classmethod
    def full_text(cls) -> str:
        return "".join(cls.PIECES)
