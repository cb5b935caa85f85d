"""Many people at once through the real stack: the local model decodes their replies together."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest

from tests.integration.conftest import Server, events_until

pytestmark = pytest.mark.integration

MESSAGES = (
    "I feel anxious about my exam tomorrow.",
    "Work has been overwhelming and I can't switch off.",
    "My best friend hasn't replied to me in days.",
    "I keep waking up at 4am.",
    "I had an argument with my sister and feel guilty.",
    "I moved to a new city and feel lonely in the evenings.",
    "I procrastinate all day and then feel bad.",
    "I get nervous speaking up in meetings.",
)


def _one_turn(server: Server, token: str, session_id: str, text: str) -> list[dict[str, Any]]:
    with server.ws(token) as ws:
        events_until(ws, "connection")
        frame = {"type": "session_message", "session_id": session_id, "message_text": text}
        ws.send(json.dumps(frame))
        return events_until(ws, "assistant_message_complete", timeout=240)


def test_eight_people_writing_at_once_each_get_a_complete_reply_and_no_busy(
    server: Server,
) -> None:
    people = [server.register(f"many-{uuid.uuid4().hex[:8]}") for _ in MESSAGES]
    sessions = [server.new_session(token) for token in people]
    results: dict[int, list[dict[str, Any]] | BaseException] = {}
    start = threading.Barrier(len(people))

    def person(index: int) -> None:
        start.wait()
        try:
            results[index] = _one_turn(server, people[index], sessions[index], MESSAGES[index])
        except BaseException as error:  # reported below, with the person it happened to
            results[index] = error

    threads = [threading.Thread(target=person, args=(i,)) for i in range(len(people))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    for index, outcome in sorted(results.items()):
        assert not isinstance(outcome, BaseException), f"person {index}: {outcome!r}"
        errors = [e for e in outcome if e["type"] == "error"]
        assert errors == [], f"person {index}: {errors}"
        complete = outcome[-1]
        assert complete["session_id"] == sessions[index]
        assert complete["message"]["text"].strip()
        if complete["message"]["status"] == "complete":
            chunks = [e["chunk"] for e in outcome if e["type"] == "assistant_message_chunk"]
            assert "".join(chunks).strip() == complete["message"]["text"].strip()
    assert len(results) == len(people)
    # Each person's stored conversation holds their own message and reply only.
    for index, token in enumerate(people):
        stored = server.messages(token, sessions[index])
        assert [m["role"] for m in stored] == ["user", "assistant"]
        assert stored[0]["text"] == MESSAGES[index]
