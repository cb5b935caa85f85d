"""Where recorded values go: Ray's metrics (exported by each node's metrics agent), or memory.

Both take the same three operations. A gauge is moved by deltas (`shift`) because Haven only
knows "one more" or "one fewer"; the recorder keeps the running value per process.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from haven.metrics.definitions import MetricSpec

Tags = Mapping[str, str]
TagKey = tuple[tuple[str, str], ...]


class Recorder(Protocol):
    def inc(self, spec: MetricSpec, tags: Tags, value: float = 1.0) -> None: ...

    def shift(self, spec: MetricSpec, tags: Tags, delta: float) -> None: ...

    def observe(self, spec: MetricSpec, tags: Tags, value: float) -> None: ...


def _key(spec: MetricSpec, tags: Tags) -> TagKey:
    # A missing or unexpected tag is a bug at the call site: fail where it is made.
    if set(tags) != set(spec.tag_keys):
        raise ValueError(f"{spec.name} takes tags {spec.tag_keys}, got {tuple(tags)}")
    return tuple(sorted(tags.items()))


class MemoryRecorder:
    """Keeps every value in this process, for tests and for runs without Ray."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[str, dict[TagKey, float]] = defaultdict(lambda: defaultdict(float))
        self._observed: dict[str, dict[TagKey, list[float]]] = defaultdict(
            lambda: defaultdict(list)
        )

    def inc(self, spec: MetricSpec, tags: Tags, value: float = 1.0) -> None:
        key = _key(spec, tags)
        with self._lock:
            self._totals[spec.name][key] += value

    def shift(self, spec: MetricSpec, tags: Tags, delta: float) -> None:
        self.inc(spec, tags, delta)

    def observe(self, spec: MetricSpec, tags: Tags, value: float) -> None:
        key = _key(spec, tags)
        with self._lock:
            self._observed[spec.name][key].append(value)

    def value(self, name: str, **tags: str) -> float:
        """A counter's or gauge's value, summed over the series that carry `tags`."""
        with self._lock:
            series = dict(self._totals.get(name, {}))
        return sum(v for key, v in series.items() if _matches(key, tags))

    def observations(self, name: str, **tags: str) -> list[float]:
        """Every value a histogram observed in the series that carry `tags`, in order."""
        with self._lock:
            series = {k: list(v) for k, v in self._observed.get(name, {}).items()}
        return [v for key, values in series.items() if _matches(key, tags) for v in values]


def _matches(key: TagKey, tags: Mapping[str, str]) -> bool:
    present = dict(key)
    return all(present.get(k) == v for k, v in tags.items())


MetricFactory = Callable[..., Any]


class RayRecorder:
    """`ray.util.metrics` objects, each created on first use in this worker process.

    Ray's per-node metrics agent exports them in Prometheus format, labelled with the worker,
    so a gauge set here is this process's own series.
    """

    def __init__(self, factories: Mapping[str, MetricFactory] | None = None) -> None:
        if factories is None:
            from ray.util import metrics as ray_metrics

            factories = {
                "counter": ray_metrics.Counter,
                "gauge": ray_metrics.Gauge,
                "histogram": ray_metrics.Histogram,
            }
        self._factories = factories
        self._lock = threading.Lock()
        self._metrics: dict[str, Any] = {}
        self._gauges: dict[tuple[str, TagKey], float] = defaultdict(float)

    def _metric(self, spec: MetricSpec) -> Any:
        with self._lock:
            metric = self._metrics.get(spec.name)
            if metric is None:
                options: dict[str, Any] = {"description": spec.description}
                if spec.tag_keys:
                    options["tag_keys"] = spec.tag_keys
                if spec.kind == "histogram":
                    options["boundaries"] = list(spec.boundaries)
                metric = self._factories[spec.kind](spec.name, **options)
                self._metrics[spec.name] = metric
            return metric

    def inc(self, spec: MetricSpec, tags: Tags, value: float = 1.0) -> None:
        _key(spec, tags)
        self._metric(spec).inc(value, tags=dict(tags) or None)

    def shift(self, spec: MetricSpec, tags: Tags, delta: float) -> None:
        key = (spec.name, _key(spec, tags))
        metric = self._metric(spec)
        with self._lock:
            # Set under the lock: two sockets closing at once must not leave the older value.
            self._gauges[key] += delta
            metric.set(self._gauges[key], tags=dict(tags) or None)

    def observe(self, spec: MetricSpec, tags: Tags, value: float) -> None:
        _key(spec, tags)
        self._metric(spec).observe(value, tags=dict(tags) or None)
