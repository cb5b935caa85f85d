"""A counsellor and the person they talk to, whose ConnectionActors live on hosts on different
worker nodes: the escalation, the join, both ways of the conversation and the hand-back cross
between the nodes."""

from __future__ import annotations

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt
import pytest

from actors.pool import host_index
from haven.storage.store import Store
from tests.integration.conftest import Server, events_until
from tests.multinode.cluster import HOST_CLASS
from tests.multinode.conftest import SECRET, Deployed
from tests.multinode.test_node_loss import placement_with_two_gateways, wait_for

pytestmark = pytest.mark.multinode

CRISIS = (
    "I have saved up a bottle of pills and I am going to take all of them tonight. This is goodbye."
)


def _register(server: Server, prefix: str) -> tuple[str, str]:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    token = server.register(name)
    return name, token


def _user_id(token: str) -> str:
    claims: dict[str, Any] = jwt.decode(token, SECRET, algorithms=["HS256"])
    return str(claims["sub"])


def _promote(database_url: str, user_id: str) -> None:
    async def run() -> None:
        async with Store.from_url(database_url) as store:
            assert await store.set_role(user_id, "counsellor") is not None

    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(asyncio.run, run()).result()


def _send(ws: Any, frame: dict[str, Any]) -> None:
    ws.send(json.dumps(frame))


def test_counsellor_and_person_on_hosts_on_different_nodes(haven: Deployed) -> None:
    server = haven.server
    # Both Gateway replicas up, and the two hosts spread, one on each worker.
    placed = wait_for(placement_with_two_gateways, 120, "two Gateway replicas")
    assert len(set(placed[HOST_CLASS])) == 2
    person_name, person = _register(server, "mnp")
    person_host = host_index(_user_id(person), 2)
    # A counsellor whose actor lives on the other host, hence the other worker node.
    while True:
        cara_name, cara = _register(server, "mnc")
        cara_id = _user_id(cara)
        if host_index(cara_id, 2) != person_host:
            break
    _promote(haven.database_url, cara_id)
    cara = server.login(cara_name)
    session_id = server.new_session(person)
    with server.ws(cara) as desk, server.ws(person) as phone:
        events_until(desk, "connection")
        events_until(phone, "connection")
        _send(phone, {"type": "session_message", "session_id": session_id, "message_text": CRISIS})
        queued = events_until(desk, "escalation_queued", timeout=180)[-1]
        assert queued["session_id"] == session_id
        assert queued["display_name"] == person_name

        _send(desk, {"type": "join", "session_id": session_id})
        history = events_until(desk, "session_history", timeout=60)[-1]
        assert history["messages"][0]["text"] == CRISIS
        events_until(phone, "counsellor_joined", timeout=60)

        _send(
            desk,
            {"type": "counsellor_message", "session_id": session_id, "message_text": "I'm here."},
        )
        said = events_until(phone, "counsellor_message", timeout=60)[-1]
        assert said["message"]["counsellor"]["display_name"] == cara_name
        _send(
            phone,
            {"type": "session_message", "session_id": session_id, "message_text": "thank you"},
        )
        relayed = events_until(desk, "user_message", timeout=120)[-1]
        assert relayed["text"] == "thank you" and relayed["session_id"] == session_id

        _send(desk, {"type": "leave", "session_id": session_id})
        assert events_until(phone, "counsellor_left", timeout=60)[-1]["reason"] == "left"
    roles = [m["role"] for m in server.messages(person, session_id)]
    assert roles[-2:] == ["counsellor", "user"]
