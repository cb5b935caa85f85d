"""Haven's application metrics: the calls the code makes, and where the values go.

Call sites use the functions below and never name a metric. In a Ray worker (the Gateway, the
ConnectionHost actors, the model replicas) the values go to `ray.util.metrics`, created on first
use and exported by the node's metrics agent in Prometheus format (docs/operations.md,
"Metrics"). Without Ray (the app tests, a single process) they go to an in-memory recorder;
tests inject their own with `use()` and read it back.

Serve's built-in request metrics are not used for sockets: a WebSocket is one long request, and
a client that drops mid-stream leaves them unreliable.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from haven.errors import RETRYABLE_CLOSE_CODES
from haven.metrics import definitions as m
from haven.metrics.recorders import MemoryRecorder, RayRecorder, Recorder

TurnOutcome = Literal[
    "completed",  # the reply was stored and announced complete
    "cancelled",  # the person cancelled the reply
    "replaced",  # the output screen replaced the generated reply
    "failed",  # generation or storage failed; a retryable error went out
    "busy",  # the language model's queue was full
    "unassessed",  # the classifier failed or timed out: resources and an error, no reply
    "refused",  # the message was refused before it was stored (e.g. unknown session)
    "duplicate",  # a resend of a stored message, answered from storage
    "handed_over",  # a counsellor is in the conversation: stored and screened, not answered
]
ReplyKind = Literal["generated", "fixed"]
RateLimit = Literal[
    "messages",  # the per-user message token bucket
    "connections_per_minute",  # new sockets per user per minute
    "connections_per_user",  # sockets open at once per user
    "queued_turns",  # messages waiting for a reply (`busy`)
]
ClosedBy = Literal["server", "client"]

# Close codes a client may send are its own choice; past the published ones they are lumped.
_KNOWN_CLOSE_CODES = frozenset(RETRYABLE_CLOSE_CODES) | {1005, 1006}

_memory = MemoryRecorder()
_ray: Recorder | None = None
_injected: Recorder | None = None


def recorder() -> Recorder:
    """The injected recorder, else Ray's once this process is a connected Ray worker or driver,
    else the in-memory one."""
    global _ray
    if _injected is not None:
        return _injected
    if _ray_connected():
        if _ray is None:
            _ray = RayRecorder()
        return _ray
    return _memory


def _ray_connected() -> bool:
    # A process that never imported Ray (the CLI, most tests) is not a Ray worker.
    ray = sys.modules.get("ray")
    return ray is not None and bool(ray.is_initialized())


@contextmanager
def use(replacement: Recorder) -> Iterator[Recorder]:
    """Records into `replacement` until the block ends (tests)."""
    global _injected
    previous, _injected = _injected, replacement
    try:
        yield replacement
    finally:
        _injected = previous


def socket_opened() -> None:
    r = recorder()
    r.shift(m.OPEN_SOCKETS, {}, 1)
    r.inc(m.SOCKETS_OPENED, {})


def socket_closed(code: int, *, by: ClosedBy) -> None:
    r = recorder()
    r.shift(m.OPEN_SOCKETS, {}, -1)
    tag = str(code) if code in _KNOWN_CLOSE_CODES else "other"
    r.inc(m.SOCKETS_CLOSED, {"code": tag, "by": by})


def turn_finished(
    outcome: TurnOutcome, *, first_chunk_s: float | None = None, reply: ReplyKind = "generated"
) -> None:
    """One turn ended; `first_chunk_s` when any of its reply reached the person."""
    r = recorder()
    r.inc(m.TURNS, {"outcome": outcome})
    if first_chunk_s is not None:
        r.observe(m.FIRST_CHUNK, {"reply": reply}, first_chunk_s)


def reply_generated(tokens_per_s: float, *, backend: str) -> None:
    recorder().observe(m.REPLY_TOKENS_PER_S, {"backend": backend}, tokens_per_s)


def classifier_message(seconds: float) -> None:
    recorder().observe(m.CLASSIFIER_MESSAGE, {}, seconds)


def classifier_batch(size: int, seconds: float, reread: int = 0) -> None:
    r = recorder()
    r.observe(m.CLASSIFIER_BATCH, {}, seconds)
    r.observe(m.CLASSIFIER_BATCH_SIZE, {}, size)
    if reread:
        r.inc(m.CLASSIFIER_REREAD, {}, reread)


def risk_assessed(level: str) -> None:
    recorder().inc(m.RISK_ASSESSMENTS, {"level": level})


def escalated(level: str) -> None:
    recorder().inc(m.ESCALATIONS, {"level": level})


def rate_limited(kind: RateLimit) -> None:
    recorder().inc(m.RATE_LIMITED, {"kind": kind})


def resumed(recovered: bool) -> None:
    recorder().inc(m.RESUMES, {"recovered": "true" if recovered else "false"})


def error_sent(code: str) -> None:
    recorder().inc(m.ERRORS, {"code": code})
