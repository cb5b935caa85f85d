"""A counsellor joins, talks and leaves, over the socket and REST, with fake model deployments:
every frame, every error, the person's view, and what storage keeps."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import WebSocketTestSession

from haven.presence import Presence
from haven.storage.queue import ReadRecord
from haven.storage.store import Store
from tests.app.conftest import Harness, SettingsFactory, build_harness
from tests.app.staff import auth, register_as, user_id
from tests.app.wire import connect, send, until
from tests.fakes import CRISIS_WORD, UNSAFE_PIECES

Event = dict[str, Any]


def _until(ws: WebSocketTestSession, done: Callable[[Event], bool]) -> list[Event]:
    events: list[Event] = []
    while True:
        events.append(ws.receive_json())
        if done(events[-1]):
            return events


def _escalated(harness: Harness, name: str = "ana") -> tuple[str, str]:
    """A person whose conversation escalated (it is in the queue): their token, its id."""
    token = harness.register(name)
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        until(ws, "connection")
        send(ws, session_id, f"{CRISIS_WORD} I can't go on")
        until(ws, "assistant_message_complete")
    return token, session_id


def _join(ws: WebSocketTestSession, session_id: str) -> None:
    ws.send_json({"type": "join", "session_id": session_id})


def _say(ws: WebSocketTestSession, session_id: str, text: str, cmid: str | None = None) -> None:
    frame: Event = {"type": "counsellor_message", "session_id": session_id, "message_text": text}
    if cmid is not None:
        frame["client_message_id"] = cmid
    ws.send_json(frame)


def _read(harness: Harness, work: Callable[[Store], Any]) -> Any:
    async def run() -> Any:
        async with Store.from_url(harness.services.settings.resolved_database_url) as store:
            return await work(store)

    return asyncio.run(run())


def _wait_for(harness: Harness, session_id: str, state: Presence) -> Any:
    deadline = time.monotonic() + 5
    while True:
        record = _read(harness, lambda store: store.presence.get(session_id))
        if record is not None and record.state is state:
            return record
        assert time.monotonic() < deadline, record
        time.sleep(0.05)


def _reads(harness: Harness) -> list[ReadRecord]:
    return _read(harness, lambda store: store.queue.reads())  # type: ignore[no-any-return]


@pytest.fixture
def counsellor(harness: Harness) -> str:
    return register_as(harness, "cara", "counsellor")


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "join", "session_id": "s-1"},
        {"type": "counsellor_message", "session_id": "s-1", "message_text": "hi"},
        {"type": "leave", "session_id": "s-1"},
    ],
)
def test_counsellor_frame_from_a_user_token_is_forbidden_and_the_socket_stays_open(
    harness: Harness, frame: Event
) -> None:
    _, session_id = _escalated(harness)
    intruder = harness.register("bob")
    with connect(harness, intruder) as ws:
        until(ws, "connection")
        ws.send_json(frame | {"session_id": session_id})
        error = until(ws, "error")[-1]
        assert error["code"] == "forbidden" and error["retryable"] is False
        ws.send_json({"type": "ping"})
        assert until(ws, "pong")[-1]["type"] == "pong"
    assert harness.client.get("/counsellor/queue", headers=auth(intruder)).status_code == 403


def test_join_sends_the_history_and_tells_the_person(harness: Harness, counsellor: str) -> None:
    person, session_id = _escalated(harness)
    with connect(harness, person) as phone, connect(harness, counsellor) as desk:
        until(phone, "connection")
        until(desk, "connection")
        _join(desk, session_id)
        history = until(desk, "session_history")[-1]
        joined = until(phone, "counsellor_joined")[-1]
        record = _read(harness, lambda store: store.presence.get(session_id))
    assert history["session_id"] == session_id and history["display_name"] == "ana"
    assert history["messages"][0]["text"].startswith(CRISIS_WORD)
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
    assert history["messages"][0]["risk_level"] == "high"
    assert joined["session_id"] == session_id
    assert joined["counsellor"] == {"display_name": "cara"}
    queue = harness.client.get("/counsellor/queue", headers=auth(counsellor)).json()
    assert [(e["session_id"], e["joined_by"]) for e in queue] == [(session_id, "cara")]
    cara = user_id(harness, counsellor)
    assert (cara, session_id, "join") in {
        (r.counsellor_id, r.session_id, r.action) for r in _reads(harness)
    }
    assert record.state is Presence.COUNSELLOR_PRESENT and record.counsellor_id == cara


def test_join_outside_the_queue_answers_not_found_without_revealing_the_session(
    harness: Harness, counsellor: str
) -> None:
    quiet = harness.register("dee")
    calm_session = harness.new_session(quiet)  # exists, never escalated
    with connect(harness, counsellor) as desk:
        until(desk, "connection")
        codes = []
        for session_id in (calm_session, str(uuid.uuid4()), "not-a-uuid"):
            _join(desk, session_id)
            codes.append(until(desk, "error")[-1]["code"])
    assert codes == ["not_found"] * 3
    assert _reads(harness) == []


def test_a_second_counsellor_gets_already_joined(harness: Harness, counsellor: str) -> None:
    _, session_id = _escalated(harness)
    other = register_as(harness, "otto", "counsellor")
    with connect(harness, counsellor) as first, connect(harness, other) as second:
        until(first, "connection")
        until(second, "connection")
        _join(first, session_id)
        until(first, "session_history")
        _join(second, session_id)
        error = until(second, "error")[-1]
    assert error["code"] == "already_joined"
    response = harness.client.post(f"/counsellor/sessions/{session_id}/join", headers=auth(other))
    assert response.status_code == 409 and response.json()["code"] == "already_joined"


def test_while_a_counsellor_is_present_the_assistant_does_not_reply(
    harness: Harness, counsellor: str
) -> None:
    person, session_id = _escalated(harness)
    requests_before = len(harness.generator.requests)
    with connect(harness, person) as phone, connect(harness, counsellor) as desk:
        until(phone, "connection")
        until(desk, "connection")
        _join(desk, session_id)
        until(desk, "session_history")
        until(phone, "counsellor_joined")
        send(phone, session_id, "are you a real person?")
        send(phone, session_id, f"{CRISIS_WORD} it is bad tonight")
        # The second message is echoed only once the first turn has ended.
        seen = _until(phone, lambda e: e["type"] == "user_message" and CRISIS_WORD in e["text"])
        on_desk = _until(desk, lambda e: e["type"] == "user_message" and CRISIS_WORD in e["text"])
        on_desk += until(desk, "safety_escalation")
    types = [e["type"] for e in seen]
    assert not any(t.startswith("assistant_message") for t in types), types
    assert len(harness.generator.requests) == requests_before
    relayed = [e for e in on_desk if e["type"] == "user_message"]
    assert [e["text"] for e in relayed] == [
        "are you a real person?",
        f"{CRISIS_WORD} it is bad tonight",
    ]
    assert on_desk[-1]["risk_level"] == "high" and on_desk[-1]["session_id"] == session_id
    deadline = time.monotonic() + 5
    while (stored := harness.messages(person, session_id))[-1]["risk_level"] is None:
        assert time.monotonic() < deadline  # the level is written beside the turn
        time.sleep(0.05)
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "user"]
    assert stored[-1]["risk_level"] == "high"


def test_counsellor_message_reaches_the_person_is_stored_and_is_idempotent(
    harness: Harness, counsellor: str
) -> None:
    person, session_id = _escalated(harness)
    with connect(harness, person) as phone, connect(harness, counsellor) as desk:
        until(phone, "connection")
        until(desk, "connection")
        _join(desk, session_id)
        until(desk, "session_history")
        joined = until(phone, "counsellor_joined")[-1]
        _say(desk, session_id, "Hi Ana, I'm Cara. I'm here with you.", cmid="c-1")
        shown = until(phone, "counsellor_message")[-1]
        echoed = until(desk, "counsellor_message")[-1]
        _say(desk, session_id, "Hi Ana, I'm Cara. I'm here with you.", cmid="c-1")
        again = until(desk, "counsellor_message")[-1]
        phone.send_json({"type": "ping"})
        after = until(phone, "pong")
    assert shown["session_id"] == session_id
    assert shown["message"]["text"] == "Hi Ana, I'm Cara. I'm here with you."
    assert shown["message"]["counsellor"] == {"display_name": "cara"}
    assert shown["seq"] > joined["seq"]
    assert echoed["message"]["id"] == shown["message"]["id"]
    assert echoed["client_message_id"] == "c-1"
    assert again["duplicate"] is True and again["message"]["id"] == shown["message"]["id"]
    assert [e["type"] for e in after] == ["pong"]
    stored = harness.messages(person, session_id)
    assert [(m["role"], m["text"]) for m in stored][-1] == (
        "counsellor",
        "Hi Ana, I'm Cara. I'm here with you.",
    )
    assert sum(m["role"] == "counsellor" for m in stored) == 1
    # Reloaded over REST, the message carries the name the person saw live; no other does.
    assert stored[-1]["counsellor"] == {"display_name": "cara"}
    assert {m["counsellor"] is None for m in stored[:-1]} == {True}
    # A client that missed it gets it again on resume, from before the join.
    with connect(harness, person, f"&last_seq={joined['seq'] - 1}") as later:
        replayed = until(later, "resumed")
    assert [e["type"] for e in replayed if e["type"].startswith("counsellor")] == [
        "counsellor_joined",
        "counsellor_message",
    ]


def test_counsellor_message_the_output_screen_stops_is_not_sent(
    harness: Harness, counsellor: str
) -> None:
    person, session_id = _escalated(harness)
    with connect(harness, counsellor) as desk:
        until(desk, "connection")
        _join(desk, session_id)
        until(desk, "session_history")
        _say(desk, session_id, "".join(UNSAFE_PIECES))
        error = until(desk, "error")[-1]
        _say(desk, session_id, "   ")
        empty = until(desk, "error")[-1]
    assert error["code"] == "unsafe_message" and empty["code"] == "empty_message"
    assert [m["role"] for m in harness.messages(person, session_id)] == ["user", "assistant"]


def test_a_counsellor_may_say_they_are_one(harness: Harness, counsellor: str) -> None:
    person, session_id = _escalated(harness)
    text = "Hi, I'm a counsellor with the service. I'm here with you now."
    with connect(harness, counsellor) as desk:
        until(desk, "connection")
        _join(desk, session_id)
        until(desk, "session_history")
        _say(desk, session_id, text)
        sent = until(desk, "counsellor_message")[-1]
    assert sent["message"]["text"] == text
    assert harness.messages(person, session_id)[-1]["text"] == text


def test_counsellor_cannot_write_to_a_session_they_have_not_joined(
    harness: Harness, counsellor: str
) -> None:
    _, session_id = _escalated(harness)
    with connect(harness, counsellor) as desk:
        until(desk, "connection")
        _say(desk, session_id, "hello")
        first = until(desk, "error")[-1]
        desk.send_json({"type": "leave", "session_id": session_id})
        second = until(desk, "error")[-1]
    assert first["code"] == second["code"] == "not_found"


def test_leave_hands_the_conversation_back_to_the_assistant(
    harness: Harness, counsellor: str
) -> None:
    person, session_id = _escalated(harness)
    with connect(harness, person) as phone, connect(harness, counsellor) as desk:
        until(phone, "connection")
        until(desk, "connection")
        _join(desk, session_id)
        until(desk, "session_history")
        desk.send_json({"type": "leave", "session_id": session_id})
        left = until(phone, "counsellor_left")[-1]
        on_desk = until(desk, "counsellor_left")[-1]
        send(phone, session_id, "ok, thank you")
        reply = until(phone, "assistant_message_complete")
    assert left["reason"] == "left" and left["counsellor"] == {"display_name": "cara"}
    assert on_desk["session_id"] == session_id
    assert reply[0]["type"] == "user_message"
    assert _read(harness, lambda store: store.presence.get(session_id)) is None
    queue = harness.client.get("/counsellor/queue", headers=auth(counsellor)).json()
    assert queue[0]["joined_by"] is None


def test_rest_join_and_leave_mirror_the_frames(harness: Harness, counsellor: str) -> None:
    person, session_id = _escalated(harness)
    url = f"/counsellor/sessions/{session_id}"
    assert harness.client.post(f"{url}/join", headers=auth(person)).status_code == 403
    with connect(harness, person) as phone:
        until(phone, "connection")
        joined = harness.client.post(f"{url}/join", headers=auth(counsellor))
        assert joined.status_code == 200, joined.text
        assert until(phone, "counsellor_joined")[-1]["counsellor"]["display_name"] == "cara"
        left = harness.client.post(f"{url}/leave", headers=auth(counsellor))
        assert left.status_code == 204
        assert until(phone, "counsellor_left")[-1]["reason"] == "left"
    body = joined.json()
    assert body["type"] == "session_history" and len(body["messages"]) == 2
    again = harness.client.post(f"{url}/leave", headers=auth(counsellor))
    assert again.status_code == 404 and again.json()["code"] == "not_found"
    unknown = harness.client.post(
        f"/counsellor/sessions/{uuid.uuid4()}/join", headers=auth(counsellor)
    )
    assert unknown.status_code == 404


def test_a_deleted_conversation_cannot_be_joined(harness: Harness, counsellor: str) -> None:
    person, session_id = _escalated(harness)
    assert harness.client.delete(f"/sessions/{session_id}", headers=auth(person)).status_code == 204
    with connect(harness, counsellor) as desk:
        until(desk, "connection")
        _join(desk, session_id)
        assert until(desk, "error")[-1]["code"] == "not_found"


def test_escalation_reaches_a_connected_counsellor_live(harness: Harness, counsellor: str) -> None:
    person = harness.register("ana")
    session_id = harness.new_session(person)
    with connect(harness, counsellor) as desk, connect(harness, person) as phone:
        until(desk, "connection")
        until(phone, "connection")
        send(phone, session_id, f"{CRISIS_WORD} tonight")
        queued = until(desk, "escalation_queued")[-1]
        until(phone, "assistant_message_complete")
    assert queued["session_id"] == session_id and queued["risk_level"] == "high"
    assert queued["display_name"] == "ana" and "joined_by" not in queued
    cara = user_id(harness, counsellor)
    assert (cara, session_id, "queue") in {
        (r.counsellor_id, r.session_id, r.action) for r in _reads(harness)
    }


def test_presence_is_restored_from_storage_when_the_persons_actor_is_rebuilt(
    harness: Harness, counsellor: str
) -> None:
    person, session_id = _escalated(harness)
    with connect(harness, counsellor) as desk:
        until(desk, "connection")
        _join(desk, session_id)
        until(desk, "session_history")
        # The person has no socket: their actor is gone; a new one is built from storage.
        assert harness.connections.existing(user_id(harness, person)) is None
        with connect(harness, person) as phone:
            first = until(phone, "counsellor_joined")[-1]
            send(phone, session_id, "still there?")
            relayed = until(desk, "user_message")[-1]
    assert first["counsellor"]["display_name"] == "cara"
    assert relayed["text"] == "still there?"
    assert len(harness.generator.requests) == 0  # the crisis turn used a reviewed reply


@pytest.fixture
def quick_grace(app_settings: SettingsFactory) -> Iterator[Harness]:
    yield from build_harness(app_settings(counsellor_grace_s=0.3))


def test_counsellor_gone_longer_than_the_grace_period_hands_back(quick_grace: Harness) -> None:
    harness = quick_grace
    counsellor = register_as(harness, "cara", "counsellor")
    person, session_id = _escalated(harness)
    with connect(harness, person) as phone:
        until(phone, "connection")
        with connect(harness, counsellor) as desk:
            until(desk, "connection")
            _join(desk, session_id)
            until(desk, "session_history")
            until(phone, "counsellor_joined")
        left = until(phone, "counsellor_left")[-1]
        send(phone, session_id, "hello?")
        until(phone, "assistant_message_complete")
    assert left["reason"] == "timed_out"
    assert _read(harness, lambda store: store.presence.get(session_id)) is None


def test_counsellor_back_within_the_grace_period_stays(harness: Harness, counsellor: str) -> None:
    _, session_id = _escalated(harness)
    with connect(harness, counsellor) as desk:
        until(desk, "connection")
        _join(desk, session_id)
        until(desk, "session_history")
    leaving = _wait_for(harness, session_id, Presence.COUNSELLOR_LEAVING)
    assert leaving.grace_until is not None
    with connect(harness, counsellor) as desk:
        until(desk, "connection")
        _wait_for(harness, session_id, Presence.COUNSELLOR_PRESENT)
        _say(desk, session_id, "I'm back")
        assert until(desk, "counsellor_message")[-1]["message"]["text"] == "I'm back"


def test_a_counsellor_with_no_socket_open_to_take_the_events_gets_the_grace_period(
    harness: Harness, counsellor: str
) -> None:
    # Joined over REST with no socket (as after their host died with their sockets): the
    # history finds nobody, so the grace period starts; a socket of theirs ends it.
    _, session_id = _escalated(harness)
    url = f"/counsellor/sessions/{session_id}/join"
    assert harness.client.post(url, headers=auth(counsellor)).status_code == 200
    leaving = _wait_for(harness, session_id, Presence.COUNSELLOR_LEAVING)
    assert leaving.grace_until is not None
    with connect(harness, counsellor) as desk:
        until(desk, "connection")
        _wait_for(harness, session_id, Presence.COUNSELLOR_PRESENT)
        _say(desk, session_id, "I'm here now")
        assert until(desk, "counsellor_message")[-1]["message"]["text"] == "I'm here now"
