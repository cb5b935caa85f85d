"""ServeRiskAssessor over a fake handle: concurrent turns share `assess_many` calls, each item
keeps its own turn's id, and a call nobody waits for is cancelled in the replica."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

import pytest

from deployments.clients import AssessItem, ServeRiskAssessor
from haven.logging_context import turn_scope
from haven.risk import Assessment, RiskLevel


def _assessment(text: str) -> Assessment:
    return Assessment(
        risk_level=RiskLevel.NONE, probabilities={}, model_id=text, model_version="test"
    )


class _Response:
    def __init__(self, items: list[AssessItem], gate: asyncio.Future[None]) -> None:
        self.items = items
        self.gate = gate
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __await__(self) -> Generator[Any, None, list[Assessment]]:
        yield from self.gate.__await__()
        return [_assessment(text) for text, _, _ in self.items]


class _Method:
    def __init__(self) -> None:
        self.responses: list[_Response] = []

    def remote(self, items: list[AssessItem]) -> _Response:
        response = _Response(items, asyncio.get_running_loop().create_future())
        self.responses.append(response)
        return response


class _Handle:
    def __init__(self) -> None:
        self.assess_many = _Method()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_turns_share_a_call_and_keep_their_own_turn_ids() -> None:
    handle = _Handle()
    assessor = ServeRiskAssessor(handle, max_in_flight=1, max_items=8)  # type: ignore[arg-type]

    async def turn(turn_id: str, text: str, context: tuple[str, ...]) -> str:
        with turn_scope(turn_id):
            return (await assessor.assess(text, context)).model_id

    turns = [
        asyncio.ensure_future(turn(f"t{i}", f"m{i}", tuple(f"c{i}" for _ in range(i))))
        for i in range(3)
    ]
    await _settle()
    calls = handle.assess_many.responses
    assert [r.items for r in calls] == [[("m0", [], "t0")]]
    calls[0].gate.set_result(None)
    await _settle()
    assert calls[1].items == [("m1", ["c1"], "t1"), ("m2", ["c2", "c2"], "t2")]
    calls[1].gate.set_result(None)
    assert await asyncio.gather(*turns) == ["m0", "m1", "m2"]


async def test_a_call_whose_turns_all_timed_out_is_cancelled() -> None:
    handle = _Handle()
    assessor = ServeRiskAssessor(handle, max_in_flight=2, max_items=8)  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(assessor.assess("m", []), timeout=0.01)
    await _settle()
    (response,) = handle.assess_many.responses
    assert response.cancelled
