"""The opt-in loop probe and the socket processes' GC settings."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from haven import gc_policy, loop_probe


@pytest.fixture
def gc_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Puts the collector back as it was: a test must not change it for the others."""
    threshold = gc.get_threshold()
    callbacks = list(gc.callbacks)
    monkeypatch.setattr(gc_policy, "_settled", False)
    monkeypatch.setattr(loop_probe, "_gc_hooked", False)
    monkeypatch.setattr(loop_probe, "_started_loops", set())
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    gc.callbacks[:] = callbacks


def test_settle_freezes_startup_objects_and_raises_thresholds(gc_state: None) -> None:
    gc_policy.settle()
    assert gc.get_threshold() == (
        gc_policy.YOUNG,
        gc_policy.MIDDLE_PER_YOUNG,
        gc_policy.FULL_PER_MIDDLE,
    )
    assert gc.get_freeze_count() > 0


def test_settle_keeps_cpython_defaults_when_turned_off(
    gc_state: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(gc_policy.ENV, "0")
    before = gc.get_threshold()
    gc_policy.settle()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


async def test_probe_is_off_without_its_variable(
    gc_state: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(loop_probe.ENV, raising=False)
    loop_probe.start()
    assert not loop_probe._started_loops


async def test_probe_records_a_blocked_loop_and_a_full_collection(
    gc_state: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "probe.jsonl"
    monkeypatch.setenv(loop_probe.ENV, str(out))
    monkeypatch.setattr(loop_probe, "SUMMARY_S", 0.3)
    monkeypatch.setattr(loop_probe, "EVENT_MS", 0.0)  # every collection is an event
    loop_probe.start()
    loop_probe.start()  # once per loop
    await asyncio.sleep(0.05)
    time.sleep(0.12)  # noqa: ASYNC251 - blocking the loop is what the probe must see
    gc.collect(2)
    await asyncio.sleep(0.4)
    for task in loop_probe._tasks:
        task.cancel()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    lags = [r["ms"] for r in records if r["event"] == "lag"]
    assert max(lags) >= 100
    assert any(r["event"] == "gc" and r["gen"] == 2 for r in records)
    summaries = [r for r in records if r["event"] == "summary"]
    assert summaries and summaries[0]["lag_max_ms"] >= 100
    assert "2" in summaries[0]["gc"]
