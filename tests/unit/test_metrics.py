"""Haven's metric definitions, the recorders behind them and the reply speed meter, without Ray."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from haven import metrics
from haven.metrics import definitions
from haven.metrics.definitions import ALL, MetricSpec
from haven.metrics.recorders import MemoryRecorder, RayRecorder
from haven.metrics.reply_meter import ReplyMeter
from tests.paths import ROOT

# Tags that would make a series per person or carry what they wrote.
FORBIDDEN_TAGS = {"user_id", "user", "session_id", "message_id", "turn_id", "text", "token"}
UNITS = ("_seconds", "_tokens_per_second", "_messages")


@pytest.mark.parametrize("spec", ALL, ids=lambda spec: spec.name)
def test_every_metric_is_named_for_haven_with_its_unit_and_low_cardinality_tags(
    spec: MetricSpec,
) -> None:
    assert spec.name.startswith("haven_") and spec.description
    assert not FORBIDDEN_TAGS & set(spec.tag_keys)
    if spec.kind == "counter":
        assert spec.name.endswith("_total")
    if spec.kind == "histogram":
        assert spec.name.endswith(UNITS)
        assert list(spec.boundaries) == sorted(set(spec.boundaries))
        assert spec.boundaries[0] > 0
    else:
        assert spec.boundaries == ()


def test_metric_names_are_unique() -> None:
    names = [spec.name for spec in ALL]
    assert len(names) == len(set(names))


def test_speed_buckets_separate_cpu_from_gpu_replies() -> None:
    # SmolLM2 on 2 CPU threads (~22 tokens/s) and a GPU stream (~150) land in different buckets,
    # and so do a GPU's first words (~0.2 s) and a CPU's (~1 s).
    def bucket(boundaries: tuple[float, ...], value: float) -> int:
        return next((i for i, edge in enumerate(boundaries) if value <= edge), len(boundaries))

    tps = definitions.TOKENS_PER_S_BUCKETS
    assert bucket(tps, 22) != bucket(tps, 150) != bucket(tps, 400)
    first = definitions.FIRST_CHUNK_BUCKETS_S
    assert bucket(first, 0.2) != bucket(first, 1.0) != bucket(first, 20)


def test_memory_recorder_sums_counters_over_matching_tags() -> None:
    recorder = MemoryRecorder()
    with metrics.use(recorder):
        metrics.turn_finished("completed", first_chunk_s=0.4)
        metrics.turn_finished("completed", first_chunk_s=0.6)
        metrics.turn_finished("failed")
        metrics.turn_finished("completed", first_chunk_s=0.1, reply="fixed")
    assert recorder.value("haven_turns_total", outcome="completed") == 3
    assert recorder.value("haven_turns_total") == 4
    assert recorder.observations("haven_time_to_first_chunk_seconds", reply="generated") == [
        0.4,
        0.6,
    ]
    assert recorder.observations("haven_time_to_first_chunk_seconds") == [0.4, 0.6, 0.1]


def test_open_sockets_gauge_goes_up_and_down_and_closes_are_counted_by_code() -> None:
    recorder = MemoryRecorder()
    with metrics.use(recorder):
        metrics.socket_opened()
        metrics.socket_opened()
        assert recorder.value("haven_open_sockets") == 2
        metrics.socket_closed(4001, by="server")
        metrics.socket_closed(4999, by="client")  # a client's own code is not a new series
    assert recorder.value("haven_open_sockets") == 0
    assert recorder.value("haven_sockets_opened_total") == 2
    assert recorder.value("haven_sockets_closed_total", code="4001", by="server") == 1
    assert recorder.value("haven_sockets_closed_total", code="other", by="client") == 1


def test_wrong_tags_fail_at_the_call_site() -> None:
    recorder = MemoryRecorder()
    with pytest.raises(ValueError, match="haven_turns_total takes tags"):
        recorder.inc(definitions.TURNS, {"outcome": "completed", "user_id": "u1"})
    with pytest.raises(ValueError):
        recorder.observe(definitions.FIRST_CHUNK, {}, 1.0)


def test_a_process_that_never_started_ray_records_in_memory() -> None:
    # Importing the metrics does not import Ray; the CLI and plain processes stay light.
    code = (
        "import sys; from haven import metrics; metrics.resumed(True); "
        "assert 'ray' not in sys.modules; print(type(metrics.recorder()).__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "MemoryRecorder"


def test_rays_recorder_is_used_once_ray_is_connected_unless_one_is_injected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_ray = MemoryRecorder()
    monkeypatch.setattr(metrics, "_ray", in_ray)
    monkeypatch.setattr(metrics, "_ray_connected", lambda: False)
    assert metrics.recorder() is not in_ray
    monkeypatch.setattr(metrics, "_ray_connected", lambda: True)
    assert metrics.recorder() is in_ray
    injected = MemoryRecorder()
    with metrics.use(injected):
        assert metrics.recorder() is injected
        metrics.resumed(True)
        metrics.resumed(False)
    assert metrics.recorder() is in_ray
    assert injected.value("haven_resumes_total", recovered="true") == 1
    assert injected.value("haven_resumes_total", recovered="false") == 1
    assert in_ray.value("haven_resumes_total") == 0


class FakeRayMetric:
    def __init__(self, kind: str, name: str, **options: Any) -> None:
        self.kind, self.name, self.options = kind, name, options
        self.calls: list[tuple[str, float, dict[str, str] | None]] = []

    def inc(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.calls.append(("inc", value, tags))

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.calls.append(("set", value, tags))

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.calls.append(("observe", value, tags))


def test_ray_recorder_creates_each_ray_metric_once_with_its_definition() -> None:
    created: list[FakeRayMetric] = []

    def factory(kind: str) -> Any:
        def make(name: str, **options: Any) -> FakeRayMetric:
            created.append(FakeRayMetric(kind, name, **options))
            return created[-1]

        return make

    recorder = RayRecorder({kind: factory(kind) for kind in ("counter", "gauge", "histogram")})
    with metrics.use(recorder):
        metrics.escalated("high")
        metrics.escalated("critical")
        metrics.socket_opened()
        metrics.socket_opened()
        metrics.socket_closed(1000, by="client")
        metrics.classifier_batch(3, 0.012)
        metrics.classifier_batch(4, 0.02, reread=2)
    by_name = {metric.name: metric for metric in created}
    assert len(created) == len(by_name)  # one object per metric, however often it is used
    escalations = by_name["haven_escalations_total"]
    assert escalations.kind == "counter" and escalations.options["tag_keys"] == ("level",)
    assert escalations.calls == [
        ("inc", 1.0, {"level": "high"}),
        ("inc", 1.0, {"level": "critical"}),
    ]
    # Ray's gauge keeps the last value set: the recorder sets the running count.
    assert [value for _, value, _ in by_name["haven_open_sockets"].calls] == [1, 2, 1]
    batch = by_name["haven_classifier_batch_seconds"]
    assert batch.kind == "histogram"
    assert batch.options["boundaries"] == list(definitions.CLASSIFIER_BUCKETS_S)
    assert batch.calls == [("observe", 0.012, None), ("observe", 0.02, None)]
    assert by_name["haven_classifier_batch_messages"].calls == [
        ("observe", 3, None),
        ("observe", 4, None),
    ]
    # Only a batch the cascade's second reader read again counts there.
    assert by_name["haven_classifier_reread_texts_total"].calls == [("inc", 2, None)]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_reply_speed_counts_tokens_after_the_first_piece_over_the_time_since_it() -> None:
    clock = Clock()
    # One token per word stands in for a tokenizer.
    meter = ReplyMeter(lambda text: len(text.split()), clock)
    clock.now = 5.0  # queue wait and prefill: not part of the rate
    meter.piece("Hello there ")
    for word in ("you ", "are ", "not ", "alone."):
        clock.now += 0.05
        meter.piece(word)
    assert meter.tokens_per_s() == pytest.approx(4 / 0.2)


def test_reply_speed_without_a_tokenizer_counts_pieces() -> None:
    clock = Clock()
    meter = ReplyMeter(None, clock)
    for _ in range(11):
        meter.piece("x")
        clock.now += 0.1
    assert meter.tokens_per_s() == pytest.approx(10 / 1.0)


def test_reply_speed_of_a_single_piece_is_not_measured_without_a_start_or_a_tokenizer() -> None:
    meter = ReplyMeter(None, Clock())
    assert meter.tokens_per_s() is None
    meter.piece("Only this.")
    assert meter.tokens_per_s() is None
    counted = ReplyMeter(lambda text: len(text.split()), Clock())
    counted.piece("Only this.")
    assert counted.tokens_per_s() is None


def test_reply_in_one_piece_is_measured_from_when_its_intent_was_chosen() -> None:
    clock = Clock()
    meter = ReplyMeter(lambda text: len(text.split()), clock)
    clock.now = 2.0
    meter.started()
    clock.now = 2.5
    meter.piece("That sounds really hard.")
    assert meter.tokens_per_s() == pytest.approx(4 / 0.5)
