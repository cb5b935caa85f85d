"""Haven's metrics on the node's Prometheus endpoint, and the replicas' JSON log lines, from a
real cluster: a turn and an escalation must move the numbers and leave a followable trail."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Server, events_until

pytestmark = pytest.mark.integration

CRITICAL = "I've taken all my pills tonight, this is goodbye"
# Ray exports custom metrics every few seconds; allow it a good margin on a busy machine.
EXPORT_WAIT_S = 60
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(server: Server) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of the node's Prometheus endpoint: (name, labels, value)."""
    body = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).text
    samples = []
    for line in body.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels = dict(LABEL.findall(match["labels"] or ""))
            samples.append((match["name"], labels, float(match["value"])))
    return samples


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(
        value
        for sample, have, value in samples
        if sample == name and all(have.get(k) == v for k, v in labels.items())
    )


def wait_for(
    server: Server, moved: Callable[[Any], bool]
) -> list[tuple[str, dict[str, str], float]]:
    deadline = time.monotonic() + EXPORT_WAIT_S
    while True:
        samples = scrape(server)
        if moved(samples):
            return samples
        assert time.monotonic() < deadline, "metrics never moved: " + "\n".join(
            f"{n} {lb} {v}" for n, lb, v in samples if n.startswith("ray_haven_")
        )
        time.sleep(2)


def _send(ws: Any, session_id: str, text: str) -> list[dict[str, Any]]:
    ws.send(json.dumps({"type": "session_message", "session_id": session_id, "message_text": text}))
    return events_until(ws, "assistant_message_complete", timeout=180)


def test_a_turn_and_an_escalation_move_havens_prometheus_metrics(server: Server) -> None:
    assert server.metrics_port is not None
    before = scrape(server)
    token = server.register(f"metrics-{uuid.uuid4().hex[:8]}")
    session_id = server.new_session(token)
    with server.ws(token) as ws:
        events_until(ws, "connection")
        _send(ws, session_id, "I had a long day at work")
        escalated = _send(ws, session_id, CRITICAL)
        assert [e["risk_level"] for e in escalated if e["type"] == "safety_escalation"]

        def moved(now: list[tuple[str, dict[str, str], float]]) -> bool:
            def grew(name: str, by: float = 1, **labels: str) -> bool:
                return total(now, name, **labels) - total(before, name, **labels) >= by

            return (
                total(now, "ray_haven_open_sockets") >= 1
                and grew("ray_haven_turns_total", 2, outcome="completed")
                and grew("ray_haven_time_to_first_chunk_seconds_count", reply="generated")
                and grew("ray_haven_time_to_first_chunk_seconds_count", reply="fixed")
                and grew("ray_haven_reply_tokens_per_second_count")
                and grew("ray_haven_classifier_message_seconds_count", 2)
                and grew("ray_haven_classifier_batch_seconds_count")
                and grew("ray_haven_escalations_total", level="critical")
                and grew("ray_haven_risk_assessments_total", 2)
            )

        samples = wait_for(server, moved)
    # Each process reports its own series; the Gateway's gauge is labelled with its worker.
    gauges = [labels for name, labels, _ in samples if name == "ray_haven_open_sockets"]
    assert gauges and all("WorkerId" in labels for labels in gauges)
    closed_before = total(before, "ray_haven_sockets_closed_total")
    wait_for(server, lambda now: total(now, "ray_haven_sockets_closed_total") > closed_before)


def _logs_dir() -> Path:
    import ray

    return Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"


def _log_lines() -> Iterator[tuple[Path, str]]:
    logs = _logs_dir()
    for path in logs.rglob("*"):
        if path.is_file() and path.suffix in (".log", ".err", ".out"):
            for line in path.read_text(errors="replace").splitlines():
                yield path, line


def test_replica_logs_are_json_lines_that_follow_a_turn_across_processes(server: Server) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    token = server.register(f"logs-{uuid.uuid4().hex[:8]}")
    session_id = server.new_session(token)
    with server.ws(token) as ws:
        events_until(ws, "connection")
        _send(ws, session_id, f"{marker} work was long and my feet hurt")
    time.sleep(2)  # the turn's last lines are written just after its completion is sent

    replica_logs = list((_logs_dir() / "serve").glob("replica_haven_*.log"))
    assert {p.name.split("_")[2] for p in replica_logs} >= {
        "Gateway",
        "SafetyClassifier",
        "ResponseGenerator",
    }
    records: list[dict[str, Any]] = []
    for path in replica_logs:
        for line in path.read_text().splitlines():
            records.append(json.loads(line))  # every replica line is one JSON object
    # The ConnectionHost (a plain Ray actor) logged the turn's end under its id ...
    ended = [
        json.loads(line)
        for path, line in _log_lines()
        if path.name.startswith("worker-") and '"turn ended: ' in line
    ]
    turn_ids = {r["turn_id"] for r in ended}
    # ... and the classifier and the generator replicas logged the same turn id.
    assessed = [r for r in records if r["message"].startswith("risk assessed")]
    generated = [r for r in records if r["message"] == "reply generated"]
    shared = {r["turn_id"] for r in assessed} & {r["turn_id"] for r in generated} & turn_ids
    assert shared, (assessed[-3:], generated[-3:], ended[-3:])
    assert all(r["deployment"] == "haven_SafetyClassifier" for r in assessed)
    # Nothing the person wrote reached any log file.
    assert not [path.name for path, line in _log_lines() if marker in line]
