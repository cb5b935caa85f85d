"""`GET /counsellor/queue` over the app: who may read it, what a conversation shows, and that
every conversation shown is recorded in the counsellors' read audit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from haven.storage.queue import ReadRecord
from haven.storage.store import Store
from tests.app.conftest import Harness
from tests.app.staff import auth, register_as, user_id
from tests.app.wire import connect, send, until
from tests.fakes import BREAK_CLASSIFIER, CRISIS_WORD, CRITICAL_WORD, MEDIUM_WORD


def _say(harness: Harness, token: str, session_id: str, text: str, last: str) -> None:
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, text)
        until(ws, last)


def _queue(harness: Harness, token: str) -> Any:
    return harness.client.get("/counsellor/queue", headers=auth(token))


def _reads(harness: Harness) -> list[ReadRecord]:
    async def read() -> list[ReadRecord]:
        async with Store.from_url(harness.services.settings.resolved_database_url) as store:
            return await store.queue.reads()

    return asyncio.run(read())


@pytest.mark.parametrize("role", ["user", "admin"])
def test_queue_refuses_anyone_but_a_counsellor_with_403(harness: Harness, role: Any) -> None:
    token = register_as(harness, "someone", role) if role != "user" else harness.register("ana")
    response = _queue(harness, token)
    assert response.status_code == 403 and response.json()["code"] == "forbidden"


def test_queue_without_a_token_answers_401(harness: Harness) -> None:
    assert harness.client.get("/counsellor/queue").status_code == 401


def test_queue_lists_escalated_conversations_most_urgent_first(harness: Harness) -> None:
    ana = harness.register("ana")
    ana_session = harness.new_session(ana)
    _say(harness, ana, ana_session, f"{CRISIS_WORD} tonight", "assistant_message_complete")
    ben = harness.register("ben")
    ben_session = harness.new_session(ben)
    _say(harness, ben, ben_session, f"{CRITICAL_WORD} goodbye", "assistant_message_complete")
    cal = harness.register("cal")
    cal_session = harness.new_session(cal)
    _say(harness, cal, cal_session, f"{BREAK_CLASSIFIER} hello", "error")
    quiet = harness.register("dee")
    _say(
        harness,
        quiet,
        harness.new_session(quiet),
        f"{MEDIUM_WORD} meh",
        "assistant_message_complete",
    )

    response = _queue(harness, register_as(harness, "cara", "counsellor"))
    assert response.status_code == 200, response.text
    queue = response.json()
    assert [(e["session_id"], e["risk_level"], e["display_name"]) for e in queue] == [
        (ben_session, "critical", "ben"),
        (ana_session, "high", "ana"),
        (cal_session, "unknown", "cal"),
    ]
    assert all(e["joined_by"] is None and e["last_escalation_at"] for e in queue)


def test_queue_shows_no_other_account_data_and_no_message_text(harness: Harness) -> None:
    token = harness.register("ana", locale="GB")
    session_id = harness.new_session(token)
    _say(
        harness, token, session_id, f"{CRISIS_WORD} my private words", "assistant_message_complete"
    )
    (entry,) = _queue(harness, register_as(harness, "cara", "counsellor")).json()
    assert set(entry) == {
        "session_id",
        "risk_level",
        "last_escalation_at",
        "display_name",
        "joined_by",
    }
    shown = repr(entry)
    for private in (user_id(harness, token), "GB", "private words", "argon2"):
        assert private not in shown


def test_every_conversation_shown_is_recorded_as_read_by_that_counsellor(
    harness: Harness,
) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    _say(harness, token, session_id, f"{CRISIS_WORD} tonight", "assistant_message_complete")
    counsellor = register_as(harness, "cara", "counsellor")
    _queue(harness, counsellor)
    _queue(harness, counsellor)
    reads = _reads(harness)
    assert [(r.counsellor_id, r.session_id, r.action) for r in reads] == [
        (user_id(harness, counsellor), session_id, "queue")
    ] * 2


def test_a_refused_queue_read_records_nothing(harness: Harness) -> None:
    token = harness.register("ana")
    _say(
        harness, token, harness.new_session(token), f"{CRISIS_WORD} x", "assistant_message_complete"
    )
    assert _queue(harness, token).status_code == 403
    assert _reads(harness) == []
