"""The stop signal the launcher gives the Gateway replicas (deployments.stopping)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from deployments import stopping


async def _watch(monkeypatch: pytest.MonkeyPatch, requested: list[float | None]) -> int:
    """How many times on_stop ran while the flag read `requested`, one value per poll."""
    reads = iter(requested)
    monkeypatch.setattr(stopping, "_stop_requested_at", lambda _app: next(reads, None))
    monkeypatch.setattr(stopping, "POLL_S", 0.001)
    stops = 0

    async def on_stop() -> None:
        nonlocal stops
        stops += 1

    watcher = asyncio.create_task(stopping.watch_for_stop("haven", 100.0, on_stop))
    await asyncio.wait({watcher}, timeout=0.5)
    watcher.cancel()
    return stops


async def test_a_stop_requested_after_the_replica_started_drains_it_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert await _watch(monkeypatch, [None, None, 101.0, 102.0]) == 1


async def test_a_stop_left_over_from_an_earlier_run_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert await _watch(monkeypatch, [99.0, 99.0, 99.0]) == 0


def test_applications_are_told_to_stop_before_they_are_deleted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ray import serve

    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(stopping, "request_stop", lambda name: calls.append(("stop", name)))
    monkeypatch.setattr(serve, "delete", lambda name: calls.append(("delete", name)))
    stopping.stop_applications(["haven", "other"])
    assert calls == [("stop", "haven"), ("delete", "haven"), ("stop", "other"), ("delete", "other")]
