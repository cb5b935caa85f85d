"""Every metric Haven records, with its type, tags and buckets, in one table.

Names carry the unit (`_seconds`, `_tokens_per_second`, `_messages`) and counters end in
`_total`. Tags take a small, fixed set of values each: never a user, session or message id, and
never anything a person wrote. Ray exports each of these with a `ray_` prefix
(`ray_haven_turns_total`) and adds its own labels (node, worker, session).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]

# From the user's message accepted to the first piece of the reply sent. On a GPU the first
# words come in ~0.1-0.3 s; on CPU ~0.3-2 s; a full model queue adds tens of seconds.
FIRST_CHUNK_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 20, 30, 60)
# One stream's decode speed: SmolLM2-135M on 2 CPU threads makes ~22 tokens/s, larger models on
# CPU 2-10; on a GPU 30-150 for 1-8B models and several hundred for small ones.
TOKENS_PER_S_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640)
# MiniLM takes ~7 ms per sentence on one CPU thread, a few ms on a GPU; the 5 ms batching wait
# and a queue of batches under load come on top.
CLASSIFIER_BUCKETS_S = (
    0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5,
)  # fmt: skip
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: Kind
    description: str
    tag_keys: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()


OPEN_SOCKETS = MetricSpec(
    "haven_open_sockets",
    "gauge",
    "WebSockets open on this Gateway replica (one series per replica process).",
)
SOCKETS_OPENED = MetricSpec(
    "haven_sockets_opened_total", "counter", "WebSockets accepted by the Gateway."
)
SOCKETS_CLOSED = MetricSpec(
    "haven_sockets_closed_total",
    "counter",
    "WebSockets ended, by close code and by which side closed first (server or client).",
    ("code", "by"),
)
TURNS = MetricSpec(
    "haven_turns_total",
    "counter",
    "User messages taken through the turn pipeline, by how the turn ended.",
    ("outcome",),
)
FIRST_CHUNK = MetricSpec(
    "haven_time_to_first_chunk_seconds",
    "histogram",
    "From the user's message accepted by the ConnectionActor to the first reply chunk sent; "
    "reply=fixed for the reviewed crisis reply, generated otherwise.",
    ("reply",),
    FIRST_CHUNK_BUCKETS_S,
)
REPLY_TOKENS_PER_S = MetricSpec(
    "haven_reply_tokens_per_second",
    "histogram",
    "Decode speed of each reply the ResponseGenerator finished: tokens after the first text "
    "piece, over the time from that piece to the last (a reply in one piece: its tokens over "
    "the time since its intent was chosen).",
    ("backend",),
    TOKENS_PER_S_BUCKETS,
)
CLASSIFIER_MESSAGE = MetricSpec(
    "haven_classifier_message_seconds",
    "histogram",
    "One message assessed inside the SafetyClassifier replica (alone and in context, batching "
    "wait and rules included).",
    (),
    CLASSIFIER_BUCKETS_S,
)
CLASSIFIER_BATCH = MetricSpec(
    "haven_classifier_batch_seconds",
    "histogram",
    "One batched model call inside the SafetyClassifier replica.",
    (),
    CLASSIFIER_BUCKETS_S,
)
CLASSIFIER_BATCH_SIZE = MetricSpec(
    "haven_classifier_batch_messages",
    "histogram",
    "Texts per batched model call of the SafetyClassifier.",
    (),
    BATCH_SIZE_BUCKETS,
)
CLASSIFIER_REREAD = MetricSpec(
    "haven_classifier_reread_texts_total",
    "counter",
    "Texts the cascade's second readers (mpnet; multilingual-e5-small for the other trained "
    "languages) read again because MiniLM gave them a chance of high or above at the gate; of "
    "the texts in haven_classifier_batch_messages.",
    (),
)
RISK_ASSESSMENTS = MetricSpec(
    "haven_risk_assessments_total",
    "counter",
    "User messages assessed, by the risk level that the turn acted on.",
    ("level",),
)
ESCALATIONS = MetricSpec(
    "haven_escalations_total",
    "counter",
    "safety_escalation events sent (crisis resources shown), by risk level; "
    "level=unknown when the classifier failed and the turn failed closed.",
    ("level",),
)
RATE_LIMITED = MetricSpec(
    "haven_rate_limited_total",
    "counter",
    "Frames or sockets refused by a per-user limit, by which limit.",
    ("kind",),
)
RESUMES = MetricSpec(
    "haven_resumes_total",
    "counter",
    "Resumes answered, by whether everything after last_seq could be replayed.",
    ("recovered",),
)
ERRORS = MetricSpec(
    "haven_errors_total",
    "counter",
    "error events sent on a WebSocket, by their wire code.",
    ("code",),
)

ALL: tuple[MetricSpec, ...] = (
    OPEN_SOCKETS,
    SOCKETS_OPENED,
    SOCKETS_CLOSED,
    TURNS,
    FIRST_CHUNK,
    REPLY_TOKENS_PER_S,
    CLASSIFIER_MESSAGE,
    CLASSIFIER_BATCH,
    CLASSIFIER_BATCH_SIZE,
    CLASSIFIER_REREAD,
    RISK_ASSESSMENTS,
    ESCALATIONS,
    RATE_LIMITED,
    RESUMES,
    ERRORS,
)
