"""What ties log records together across processes: the turn id, and where replicas log.

Records carry their ids as `extra=` fields (`turn_id`, `connection_id`); Ray's JSON formatter
(`ray.LoggingConfig(encoding="JSON")`, and Serve's `logging_config: {encoding: JSON}`) writes
every such field as a key of the record's JSON line. A turn's id also travels with its calls to
the model deployments: the turn sets it here, and the Serve adapters (`deployments.clients`)
pass it on as an argument, because Serve's own request id starts afresh at every call made from
a plain Ray actor such as a ConnectionHost.

Log records never hold what a person wrote, a token or a password: ids, codes, levels and
timings only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# The packages whose loggers a Serve replica sends to its own log file.
HAVEN_LOGGERS = ("haven", "actors", "deployments", "models")
SERVE_LOGGER = "ray.serve"

_turn_id: ContextVar[str | None] = ContextVar("haven_turn_id", default=None)


def current_turn_id() -> str | None:
    """The id of the turn this code runs for, if any (also in tasks the turn started)."""
    return _turn_id.get()


@contextmanager
def turn_scope(turn_id: str) -> Iterator[None]:
    token = _turn_id.set(turn_id)
    try:
        yield
    finally:
        _turn_id.reset(token)


class _ToServeLogger(logging.Handler):
    """Hands each record to Serve's logger, whose handlers add the replica and request fields
    and write the replica's log file in the configured encoding."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self._target = target

    def emit(self, record: logging.LogRecord) -> None:
        self._target.handle(record)


def send_to_serve_log() -> None:
    """Call in a Serve replica's constructor: Haven's records then go where Serve's do.

    Serve's `logging_config` sets up only the `ray.serve` logger; without this, records of
    Haven's own loggers would reach only the worker's stderr file, outside the replica's log.
    Outside a replica (a deployment class built directly, as tests do) it changes nothing.
    """
    from ray import serve
    from ray.serve.exceptions import RayServeException

    try:
        serve.get_replica_context()
    except RayServeException:
        return
    target = logging.getLogger(SERVE_LOGGER)
    for name in HAVEN_LOGGERS:
        logger = logging.getLogger(name)
        if any(isinstance(handler, _ToServeLogger) for handler in logger.handlers):
            continue
        logger.addHandler(_ToServeLogger(target))
        logger.setLevel(target.getEffectiveLevel())
        # Serve's handlers already write stderr too; the root logger would repeat each line.
        logger.propagate = False
