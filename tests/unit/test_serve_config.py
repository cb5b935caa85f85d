"""The shipped serve_config.yaml is consistent with itself: what the generator's batch and queue
can hold fits the slots Serve gives its replica, and autoscaling acts before they are full."""

from __future__ import annotations

from typing import Any

from deployments.app import AppArgs
from deployments.launch import load_config
from tests.paths import ROOT


def deployment(name: str) -> Any:
    config = load_config(ROOT / "serve_config.yaml")
    (found,) = [d for d in config.applications[0].deployments if d.name == name]
    return found


def generator_args() -> AppArgs:
    config = load_config(ROOT / "serve_config.yaml")
    return AppArgs.model_validate(config.applications[0].args)


def test_batch_and_queue_fit_the_generators_request_slots() -> None:
    options = generator_args().generator
    slots = deployment("ResponseGenerator").max_ongoing_requests

    # Past these the replica answers `busy` itself instead of Serve queueing in front of it.
    assert options.max_batch_size + options.max_queued <= slots
    assert options.max_batch_size >= 16


def test_generator_autoscales_on_replies_in_flight_before_its_slots_are_full() -> None:
    generator = deployment("ResponseGenerator")
    autoscaling = generator.autoscaling_config

    assert 1 <= autoscaling["min_replicas"] <= autoscaling["max_replicas"]
    assert autoscaling["target_ongoing_requests"] < generator.max_ongoing_requests
