"""The safety policy as a client sees it: escalation first, the right reply per level, fail
closed, unsafe generated text replaced, every escalation audited without the message text."""

from __future__ import annotations

import asyncio
from typing import Any

from haven.crisis_resources import resources_for
from haven.reply_elements import asks_about_safety, carries_crisis_resources, names_line
from haven.reviewed_replies import variants
from haven.risk import RiskLevel
from haven.settings import Settings
from tests.app.conftest import Harness, SettingsFactory, build_harness
from tests.app.wire import connect, send, until
from tests.fakes import (
    AGREEING_GENERATOR,
    BREAK_CLASSIFIER,
    CRISIS_WORD,
    CRITICAL_WORD,
    HANG_CLASSIFIER,
    HOTLINE_GENERATOR,
    MEDIUM_WORD,
    UNSAFE_GENERATOR,
    UNSAFE_PIECES,
    FakeGenerator,
)

US = resources_for("US", Settings())


def test_critical_message_gets_escalation_first_then_the_fixed_reply(harness: Harness) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, f"{CRITICAL_WORD} I have the pills in my hand")
        events = until(ws, "assistant_message_complete")
    types = [e["type"] for e in events]
    assert types[:3] == ["user_message", "safety_escalation", "assistant_message_start"]
    escalation = events[1]
    assert escalation["risk_level"] == "critical"
    resources = escalation["emergency_resources"]
    assert resources["crisis_hotline"] == "988" and resources["crisis_text"] == "741741"
    assert resources["text_instruction"] == "Text HOME to 741741"
    assert resources["emergency_number"] == "911" and resources["message"]
    complete = events[-1]["message"]
    assert complete["intent"] == "crisis_support" and complete["risk_level"] == "critical"
    assert "988" in complete["text"] and "741741" in complete["text"]
    # The fixed reply is not generated: the language model never saw this message.
    assert harness.generator.requests == []


def _reply_events(harness: Harness, text: str) -> list[dict[str, Any]]:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, text)
        return until(ws, "assistant_message_complete")


def _streamed(events: list[dict[str, Any]]) -> str:
    return "".join(e["chunk"] for e in events if e["type"] == "assistant_message_chunk")


def test_high_risk_escalates_then_sends_a_reviewed_safety_check_in(harness: Harness) -> None:
    events = _reply_events(harness, f"{CRISIS_WORD} I keep thinking about how I'd do it")
    types = [e["type"] for e in events]
    assert types.index("safety_escalation") < types.index("assistant_message_start")
    assert events[types.index("safety_escalation")]["risk_level"] == "high"
    complete = events[-1]["message"]
    assert complete["intent"] == "safety_check_in" and complete["risk_level"] == "high"
    text = complete["text"]
    assert names_line(text, US) and asks_about_safety(text)
    assert text in {v.text for v in variants(RiskLevel.HIGH, US)}
    # Reviewed, not generated: the language model never saw this message.
    assert harness.generator.requests == []
    # Streamed sentence by sentence, like a generated reply.
    assert types.count("assistant_message_chunk") >= 3 and _streamed(events).strip() == text


def test_consecutive_high_risk_turns_get_different_reviewed_replies(harness: Harness) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    texts = []
    with connect(harness, token) as ws:
        until(ws, "connection")
        for _ in range(3):
            send(ws, session_id, f"{CRISIS_WORD} I still want to do it")
            texts.append(until(ws, "assistant_message_complete")[-1]["message"]["text"])
    assert len(set(texts)) == 3


def test_medium_message_gets_a_reviewed_reply_that_names_the_line_without_a_panel(
    harness: Harness,
) -> None:
    events = _reply_events(harness, f"{MEDIUM_WORD} sometimes I wish I could disappear")
    assert "safety_escalation" not in [e["type"] for e in events]
    # The local model never writes at medium risk.
    assert harness.generator.requests == []
    complete = events[-1]["message"]
    assert complete["intent"] == "gentle_check_in" and complete["risk_level"] == "medium"
    assert complete["text"] in {v.text for v in variants(RiskLevel.MEDIUM, US)}
    assert names_line(complete["text"], US) and "right now" in complete["text"]
    assert _streamed(events).strip() == complete["text"]


def test_trusted_model_at_medium_risk_writes_and_gets_the_line_appended(
    app_settings: SettingsFactory,
) -> None:
    # The fake generator stands in for a large model behind the `openai` backend.
    for harness in build_harness(app_settings(generated_replies_at_medium=True)):
        events = _reply_events(harness, f"{MEDIUM_WORD} sometimes I wish I could disappear")
        assert "safety_escalation" not in [e["type"] for e in events]
        (request,) = harness.generator.requests
        # The planner chooses the intent; the generator adds the gentle check-in for medium.
        assert request.intent is None and request.risk_level == "medium"
        text = events[-1]["message"]["text"]
        # The model's words first, then a reviewed sentence that support is there right now.
        assert text.startswith(FakeGenerator.full_text()) and names_line(text, US)
        assert "right now" in text and _streamed(events).strip() == text


def test_trusted_model_at_medium_risk_that_agrees_is_replaced_by_a_reply_naming_the_line(
    app_settings: SettingsFactory,
) -> None:
    for harness in build_harness(app_settings(generated_replies_at_medium=True)):
        events = _reply_events(
            harness, f"{MEDIUM_WORD} {AGREEING_GENERATOR} everyone would be better off without me"
        )
        assert "safety_escalation" not in [e["type"] for e in events]
        complete = events[-1]["message"]
        assert complete["status"] == "replaced"
        assert "great idea" not in _streamed(events) and "great idea" not in complete["text"]
        assert names_line(complete["text"], US) and "right now" in complete["text"]


def test_everyday_reply_that_agrees_is_sent(harness: Harness) -> None:
    events = _reply_events(harness, f"{AGREEING_GENERATOR} I might start journaling again")
    complete = events[-1]["message"]
    assert complete["status"] == "complete"
    assert complete["text"] == "I think that is a great idea. Take care."
    assert not carries_crisis_resources(complete["text"])


def test_everyday_message_gets_no_panel_and_no_crisis_line(harness: Harness) -> None:
    events = _reply_events(harness, f"{HOTLINE_GENERATOR} work was long and my feet hurt")
    assert "safety_escalation" not in [e["type"] for e in events]
    text = events[-1]["message"]["text"]
    assert not carries_crisis_resources(text) and "988" not in _streamed(events)
    # The sentence's start went out before its hotline did; a reviewed clause finishes it.
    assert text == (
        "That sounds like a long day. If it ever gets too much, talk to someone you trust. "
        "What helped you get through it?"
    )


def test_trusted_model_at_high_risk_gets_the_line_appended(
    app_settings: SettingsFactory,
) -> None:
    # The fake generator stands in for a large model behind the `openai` backend.
    for harness in build_harness(app_settings(generated_replies_at_high=True)):
        events = _reply_events(harness, f"{CRISIS_WORD} I keep thinking about how I'd do it")
        types = [e["type"] for e in events]
        assert types.index("safety_escalation") < types.index("assistant_message_start")
        (request,) = harness.generator.requests
        assert request.intent == "safety_check_in" and request.risk_level == "high"
        text = events[-1]["message"]["text"]
        assert text.startswith(FakeGenerator.full_text())
        assert names_line(text, US) and asks_about_safety(text)
        assert _streamed(events).strip() == text


def test_risk_stated_earlier_carries_over_to_a_short_reply(harness: Harness) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, f"{CRITICAL_WORD} tonight is the night")
        until(ws, "assistant_message_complete")
        send(ws, session_id, "ok")
        events = until(ws, "assistant_message_complete")
    assert [e["risk_level"] for e in events if e["type"] == "safety_escalation"] == ["critical"]
    text, context = harness.assessor.calls[-1]
    assert text == "ok" and any(CRITICAL_WORD in c for c in context)


def test_classifier_timeout_fails_closed(app_settings: SettingsFactory) -> None:
    for harness in build_harness(app_settings(safety_timeout_s=0.3)):
        token = harness.register("ana")
        session_id = harness.new_session(token)
        with connect(harness, token) as ws:
            until(ws, "connection")
            send(ws, session_id, f"{HANG_CLASSIFIER} hello")
            events = until(ws, "error")
        assert [e["type"] for e in events] == ["user_message", "safety_escalation", "error"]
        assert events[1]["risk_level"] == "unknown"
        assert events[1]["emergency_resources"]["crisis_hotline"] == "988"
        assert events[2]["code"] == "safety_unavailable" and events[2]["retryable"] is True
        assert harness.generator.requests == []
        # The person's words are kept even though they could not be assessed.
        assert harness.messages(token, session_id)[0]["text"] == f"{HANG_CLASSIFIER} hello"


def test_unsafe_generated_text_is_stopped_and_replaced(harness: Harness) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, f"{UNSAFE_GENERATOR} how would I do it")
        events = until(ws, "assistant_message_complete")
    streamed = "".join(e["chunk"] for e in events if e["type"] == "assistant_message_chunk")
    # The piece that completed the means detail never went out, nor anything after it.
    assert "40" not in streamed and "Good luck" not in streamed
    # Text streams as it comes, up to where the means detail began.
    assert streamed.startswith(UNSAFE_PIECES[0])
    assert "".join(UNSAFE_PIECES).startswith(streamed)
    complete = events[-1]["message"]
    assert complete["status"] == "replaced"
    assert "988" in complete["text"] and "40" not in complete["text"]
    assert harness.generator.streams[0].closed
    stored = harness.messages(token, session_id)
    assert stored[1]["text"] == complete["text"] and stored[1]["status"] == "replaced"


def test_escalations_are_audited_without_message_text(harness: Harness) -> None:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    secret_words = "my private words about the bridge"
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, f"{CRITICAL_WORD} {secret_words}")
        until(ws, "assistant_message_complete")
        send(ws, session_id, f"{BREAK_CLASSIFIER} again")
        until(ws, "error")
        # A new session: in the first, the earlier critical message still colours every reply.
        send(ws, harness.new_session(token), "just a normal day")
        until(ws, "assistant_message_complete")
    records = asyncio.run(_escalations(harness))
    assert [(r.risk_level, r.action) for r in records] == [
        ("critical", "resources_and_crisis_reply"),
        ("unknown", "resources_and_no_reply"),
    ]
    first = records[0]
    stored = harness.messages(token, session_id)
    assert first.session_id == session_id and first.message_id == stored[0]["id"]
    assert first.scores["critical"] == 1.0 and first.model_id == "fake"
    assert secret_words not in repr(records)


async def _escalations(harness: Harness) -> list:  # type: ignore[type-arg]
    from haven.storage.store import Store

    store = Store.from_url(harness.services.settings.resolved_database_url)
    try:
        return await store.audit.escalations()
    finally:
        await store.close()


def test_crisis_resources_follow_the_users_locale(harness: Harness) -> None:
    token = harness.register("ana", locale="en-GB")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, f"{CRITICAL_WORD} goodbye")
        events = until(ws, "assistant_message_complete")
    resources = next(e for e in events if e["type"] == "safety_escalation")["emergency_resources"]
    assert resources["locale"] == "GB" and resources["crisis_hotline"] == "116 123"
    assert resources["emergency_number"] == "999" and resources["message"]
    assert "116 123" in events[-1]["message"]["text"]


def test_unknown_locale_at_registration_is_refused(harness: Harness) -> None:
    response = harness.client.post(
        "/auth/register",
        json={"username": "ana", "password": "correct horse battery", "locale": "Narnia"},
    )
    assert response.status_code == 422
