"""A counsellor takes a conversation over on the real local cluster: two people escalate, a
counsellor hears of both live, joins one, talks, and hands back; and the person's host actor
is killed mid-conversation without losing the counsellor's presence."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
import ray
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from actors.pool import host_index
from haven.presence import Presence
from haven.storage.store import Store
from tests.integration.conftest import Server, events_until

pytestmark = pytest.mark.integration

CRISIS = (
    "I have saved up a bottle of pills and I am going to take all of them tonight. This is goodbye."
)


def _counsellor(server: Server, name: str) -> str:
    """A counsellor's token: registered, given the role in storage, logged in."""
    person = server.register(name)
    url = server.config_args["settings"]["database_url"]

    async def promote() -> None:
        async with Store.from_url(url) as store:
            account = await store.get_user_by_username(name)
            assert account is not None
            assert await store.set_role(account.id, "counsellor") is not None

    assert person
    asyncio.run(promote())
    return server.login(name)


def _send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    ws.send(json.dumps(frame))


def _say(ws: ClientConnection, session_id: str, text: str) -> None:
    _send(ws, {"type": "session_message", "session_id": session_id, "message_text": text})


def _until(ws: ClientConnection, done: Any, timeout: float = 180) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        events.append(json.loads(ws.recv(timeout=timeout)))
        if done(events[-1]):
            return events


def _escalate(server: Server, ws: ClientConnection, token: str) -> str:
    session_id = server.new_session(token)
    _say(ws, session_id, CRISIS)
    events_until(ws, "assistant_message_complete", timeout=180)
    return session_id


def test_live_hand_off_with_two_people_and_a_counsellor(server: Server) -> None:
    tag = uuid.uuid4().hex[:6]
    cara = _counsellor(server, f"cara-{tag}")
    ana, ben = server.register(f"ana-{tag}"), server.register(f"ben-{tag}")
    with server.ws(cara) as desk, server.ws(ana) as ana_ws, server.ws(ben) as ben_ws:
        for ws in (desk, ana_ws, ben_ws):
            events_until(ws, "connection")
        ana_session = _escalate(server, ana_ws, ana)
        ben_session = _escalate(server, ben_ws, ben)
        queued: set[str] = set()
        while queued != {ana_session, ben_session}:
            event = events_until(desk, "escalation_queued")[-1]
            queued.add(event["session_id"])

        _send(desk, {"type": "join", "session_id": ana_session})
        history = events_until(desk, "session_history")[-1]
        assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
        assert history["messages"][0]["text"] == CRISIS
        assert events_until(ana_ws, "counsellor_joined")[-1]["session_id"] == ana_session

        _send(
            desk,
            {
                "type": "counsellor_message",
                "session_id": ana_session,
                "message_text": "Hi, I'm Cara, a counsellor. I'm here with you now.",
                "client_message_id": f"k-{tag}",
            },
        )
        said = events_until(ana_ws, "counsellor_message")[-1]
        assert said["message"]["counsellor"]["display_name"] == f"cara-{tag}"

        # Ana's messages reach Cara and get no reply from the assistant; Ben still gets his.
        _say(ana_ws, ana_session, "thank you for being here")
        _say(ana_ws, ana_session, "I don't know what to do")
        _say(ben_ws, ben_session, "I went for a walk in the park today")
        seen = _until(ana_ws, lambda e: e.get("text") == "I don't know what to do")
        assert not [e for e in seen if e["type"].startswith("assistant_message")], seen
        relayed = _until(desk, lambda e: e.get("text") == "I don't know what to do")
        assert {e["session_id"] for e in relayed if e["type"] == "user_message"} == {ana_session}
        events_until(ben_ws, "assistant_message_complete", timeout=180)

        _send(desk, {"type": "leave", "session_id": ana_session})
        assert events_until(ana_ws, "counsellor_left")[-1]["reason"] == "left"
        _say(ana_ws, ana_session, "ok")
        after = _until(ana_ws, lambda e: e["type"] == "assistant_message_complete", timeout=180)
        # Written while Cara was there, the earlier messages stay unanswered by the assistant.
        assert [e.get("text") for e in after if e["type"] == "user_message"] == ["ok"]
    roles = [m["role"] for m in server.messages(ana, ana_session)]
    assert roles[:3] == ["user", "assistant", "counsellor"]
    assert roles[3:] == ["user", "user", "user", "assistant"]


def _kill_hosts(index: int | None = None) -> None:
    """Kills every connection host, or only host `index`."""
    wanted = "connection-host" if index is None else f"connection-host-{index}"
    for host in ray.util.list_named_actors(all_namespaces=True):
        if host["name"].endswith(wanted) or (index is None and wanted in host["name"]):
            ray.kill(ray.get_actor(host["name"], namespace=host["namespace"]), no_restart=True)


def _escalated_and_joined(
    server: Server, desk: ClientConnection, person_ws: ClientConnection, person: str
) -> str:
    """The person escalates in a new session and the counsellor at `desk` joins it."""
    events_until(desk, "connection")
    events_until(person_ws, "connection")
    session_id = _escalate(server, person_ws, person)
    _send(desk, {"type": "join", "session_id": session_id})
    events_until(desk, "session_history")
    events_until(person_ws, "counsellor_joined")
    return session_id


def _reconnect(server: Server, token: str, timeout_s: float = 180) -> ClientConnection:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ws = server.ws(token)
            events_until(ws, "connection", timeout=60)
            return ws
        except (OSError, ConnectionClosed, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def test_killing_the_host_actors_keeps_the_counsellor_in_the_conversation(
    server: Server,
) -> None:
    tag = uuid.uuid4().hex[:6]
    cara = _counsellor(server, f"cara-{tag}")
    ana = server.register(f"ana-{tag}")
    with server.ws(cara) as desk, server.ws(ana) as ana_ws:
        session_id = _escalated_and_joined(server, desk, ana_ws, ana)
        _kill_hosts()
        for ws in (desk, ana_ws):
            with pytest.raises(ConnectionClosed):
                while True:
                    ws.recv(timeout=60)
    with _reconnect(server, cara) as desk, _reconnect(server, ana) as ana_ws:
        # Restored from storage: the person is told who is with them, the assistant stays quiet.
        assert events_until(ana_ws, "counsellor_joined")[-1]["session_id"] == session_id
        _say(ana_ws, session_id, "are you still there?")
        relayed = _until(desk, lambda e: e.get("text") == "are you still there?")
        assert relayed[-1]["session_id"] == session_id
        _send(
            desk,
            {"type": "counsellor_message", "session_id": session_id, "message_text": "Yes."},
        )
        after = events_until(ana_ws, "counsellor_message")
        assert not [e for e in after if e["type"].startswith("assistant_message")], after


def test_readiness_recovers_after_every_host_actor_died(server: Server) -> None:
    # No socket has used the fresh hosts yet: readiness itself replaces the dead handles.
    server.ws(server.register(f"rdy-{uuid.uuid4().hex[:6]}")).close()
    _kill_hosts()
    deadline = time.monotonic() + 60
    while True:
        answer = httpx.get(f"{server.http}/readyz", timeout=30)
        if answer.status_code == 200:
            break
        assert time.monotonic() < deadline, answer.text
        time.sleep(1)
    assert answer.json() == {"status": "ready"}


def _user_id(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


def _presence(server: Server, session_id: str) -> Presence | None:
    url = server.config_args["settings"]["database_url"]

    async def read() -> Presence | None:
        async with Store.from_url(url) as store:
            record = await store.presence.get(session_id)
            return record.state if record else None

    return asyncio.run(read())


def _wait_for_presence(server: Server, session_id: str, state: Presence) -> None:
    deadline = time.monotonic() + 60
    while (seen := _presence(server, session_id)) is not state:
        assert time.monotonic() < deadline, seen
        time.sleep(0.5)


def _on_different_hosts(server: Server) -> tuple[str, str, int, int]:
    """A person and a counsellor whose ids map to different hosts: (person token, counsellor
    token, person's host, counsellor's host)."""
    hosts = server.config_args["settings"].get("connection_hosts", 2)
    ana = server.register(f"ana-{uuid.uuid4().hex[:6]}")
    while True:
        cara = _counsellor(server, f"cara-{uuid.uuid4().hex[:6]}")
        ana_host, cara_host = (host_index(_user_id(t), hosts) for t in (ana, cara))
        if ana_host != cara_host:
            return ana, cara, ana_host, cara_host


def test_a_counsellor_lost_with_their_host_gets_the_grace_period(server: Server) -> None:
    # Counsellor and person on different hosts; only the counsellor's host is killed, so no
    # close of theirs reaches the person's actor: the person's next message finds them gone.
    ana, cara, _, cara_host = _on_different_hosts(server)
    with server.ws(cara) as desk, server.ws(ana) as ana_ws:
        session_id = _escalated_and_joined(server, desk, ana_ws, ana)
        _kill_hosts(cara_host)
        with pytest.raises(ConnectionClosed):
            while True:
                desk.recv(timeout=60)
        assert _presence(server, session_id) is Presence.COUNSELLOR_PRESENT
        _say(ana_ws, session_id, "hello? are you there?")
        _wait_for_presence(server, session_id, Presence.COUNSELLOR_LEAVING)
    with _reconnect(server, cara) as desk:
        _wait_for_presence(server, session_id, Presence.COUNSELLOR_PRESENT)


def _owner_class(host_suffix: str) -> str:
    """The class of the actor that owns the live host named `...host_suffix` (a worker is
    known by its node and port; the state API does not give owners, the GCS table does)."""
    table = [i for i in ray._private.state.actors().values() if i["State"] == "ALIVE"]

    def where(address: dict[str, Any]) -> tuple[str, int]:
        return address["NodeID"], address["Port"]

    classes = {where(i["Address"]): i["ActorClassName"] for i in table}
    (host,) = [i for i in table if i["Name"].endswith(host_suffix)]
    return str(classes.get(where(host["OwnerAddress"]), "not an actor"))


def test_a_persons_host_that_died_is_made_again_by_a_gateway_replica(server: Server) -> None:
    # The counsellor's call needs the person's host, which died; it is created through the
    # Gateway, so it belongs to a replica (and stops with it), not to the counsellor's host.
    ana, cara, ana_host, _ = _on_different_hosts(server)
    suffix = f"connection-host-{ana_host}"
    with server.ws(cara) as desk:
        with server.ws(ana) as ana_ws:
            session_id = _escalated_and_joined(server, desk, ana_ws, ana)
        _kill_hosts(ana_host)
        _send(
            desk,
            {"type": "counsellor_message", "session_id": session_id, "message_text": "Still here."},
        )
        said = _until(desk, lambda e: e["type"] in ("counsellor_message", "error"))[-1]
        assert said["type"] == "counsellor_message", said
    assert "Gateway" in _owner_class(suffix)
    assert [m["text"] for m in server.messages(ana, session_id)][-1] == "Still here."
