"""The turn id's context, and Haven's records reaching a Serve replica's log as JSON lines."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest

from haven.logging_context import (
    HAVEN_LOGGERS,
    SERVE_LOGGER,
    current_turn_id,
    send_to_serve_log,
    turn_scope,
)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def serve_logger() -> Iterator[tuple[logging.Logger, Collect]]:
    """A stand-in for the logger Serve configures in a replica; every logger touched is put
    back as it was, so other tests keep capturing Haven's records."""
    names = (SERVE_LOGGER, *HAVEN_LOGGERS)
    saved = {
        name: (list(lg.handlers), lg.level, lg.propagate)
        for name in names
        for lg in [logging.getLogger(name)]
    }
    serve = logging.getLogger(SERVE_LOGGER)
    collected = Collect()
    serve.handlers = [collected]
    serve.setLevel(logging.INFO)
    serve.propagate = False
    try:
        yield serve, collected
    finally:
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)


async def test_turn_id_is_seen_in_tasks_the_turn_starts_and_gone_after_it() -> None:
    assert current_turn_id() is None
    with turn_scope("t-1"):
        seen = await asyncio.ensure_future(asyncio.sleep(0, result=current_turn_id()))
        assert seen == "t-1"
    assert current_turn_id() is None


def test_haven_records_in_a_replica_go_to_serve_logger_once_at_its_level(
    serve_logger: tuple[logging.Logger, Collect], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray import serve

    _, collected = serve_logger
    monkeypatch.setattr(serve, "get_replica_context", lambda: object())  # inside a replica
    send_to_serve_log()
    send_to_serve_log()  # a second replica constructor in the process adds nothing
    root = Collect()  # what would reach the worker's stderr a second time
    logging.getLogger().addHandler(root)
    try:
        logging.getLogger("deployments.safety").info("risk assessed", extra={"turn_id": "t-9"})
        logging.getLogger("models.llm.prompt").debug("below the replica's level")
    finally:
        logging.getLogger().removeHandler(root)
    names = [(r.name, r.__dict__.get("turn_id")) for r in collected.records]
    assert names == [("deployments.safety", "t-9")]
    assert root.records == []


def test_outside_a_replica_haven_loggers_are_left_alone(
    serve_logger: tuple[logging.Logger, Collect],
) -> None:
    before = [(lg.handlers[:], lg.propagate) for lg in map(logging.getLogger, HAVEN_LOGGERS)]
    send_to_serve_log()
    assert [(lg.handlers, lg.propagate) for lg in map(logging.getLogger, HAVEN_LOGGERS)] == before


def test_rays_json_formatter_writes_extra_fields_as_keys() -> None:
    # The contract Haven's logs rely on: `extra=` fields become keys of the JSON line, both
    # for `ray.LoggingConfig(encoding="JSON")` and Serve's JSON replica logs.
    from ray._common.formatters import JSONFormatter

    record = logging.LogRecord(
        "actors.turn", logging.INFO, "turn.py", 1, "turn ended: %s", ("completed",), None
    )
    record.turn_id, record.outcome = "t-3", "completed"
    line = json.loads(JSONFormatter().format(record))
    assert line["message"] == "turn ended: completed"
    assert line["turn_id"] == "t-3" and line["outcome"] == "completed"
    assert line["levelname"] == "INFO"
