"""Killing each part of a real local Ray cluster: what the client sees, and that nothing a
person wrote is lost. Runs after the other integration modules (it restarts replicas)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import ray
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.integration.conftest import Server, events_until

pytestmark = pytest.mark.integration

SERVE_NAMESPACE = "serve"


def _replica_names(deployment: str) -> list[str]:
    names = ray.util.list_named_actors(all_namespaces=True)
    return [n["name"] for n in names if f"#{deployment}#" in n["name"]]


def _kill(name: str, namespace: str = SERVE_NAMESPACE) -> None:
    ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)


def _kill_replicas(deployment: str) -> None:
    names = _replica_names(deployment)
    assert names, f"no replica of {deployment} found"
    for name in names:
        _kill(name)


def _say(ws: Any, session_id: str, text: str) -> None:
    ws.send(json.dumps({"type": "session_message", "session_id": session_id, "message_text": text}))


def _until_any(ws: Any, types: set[str], timeout_s: float = 120) -> dict[str, Any]:
    while True:
        event: dict[str, Any] = json.loads(ws.recv(timeout=timeout_s))
        if event["type"] in types:
            return event


def _connect_retrying(server: Server, token: str, query: str = "", timeout_s: float = 180) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ws = server.ws(token, query)
            events_until(ws, "connection", timeout=60)
            return ws
        except (OSError, InvalidStatus, ConnectionClosed, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def test_generator_replica_killed_mid_batch_fails_every_turn_in_it(server: Server) -> None:
    people = [server.register(f"gen-{uuid.uuid4().hex[:8]}") for _ in range(3)]
    sessions = [server.new_session(token) for token in people]
    sockets = [server.ws(token) for token in people]
    try:
        for ws in sockets:
            events_until(ws, "connection")
        for ws, session_id in zip(sockets, sessions, strict=True):
            _say(ws, session_id, "Tell me about how to relax after a long week")
        for ws in sockets:
            events_until(ws, "assistant_message_start")
        # The replies are in the replica's batch together when it dies.
        _kill_replicas("ResponseGenerator")
        finished_first = []
        for ws in sockets:
            outcome = _until_any(ws, {"error", "assistant_message_complete"})
            if outcome["type"] == "error":
                assert outcome["code"] == "generation_failed" and outcome["retryable"] is True
            finished_first.append(outcome["type"] == "assistant_message_complete")
        # A reply may have ended just before the kill; the others were cut by it.
        assert not all(finished_first)
        server.wait_ready()
        for ws, session_id in zip(sockets, sessions, strict=True):
            _say(ws, session_id, "Let me try again")
        for ws in sockets:
            complete = events_until(ws, "assistant_message_complete", timeout=180)[-1]
            assert complete["message"]["text"]
    finally:
        for ws in sockets:
            ws.close()
    for token, session_id, finished in zip(people, sessions, finished_first, strict=True):
        roles = [m["role"] for m in server.messages(token, session_id)]
        # Both messages kept; a broken reply not stored as complete.
        expected = ["user", "assistant"] if finished else ["user"]
        assert roles == [*expected, "user", "assistant"]


def test_classifier_replica_killed_fails_closed_then_recovers(server: Server) -> None:
    token = server.register(f"cls-{uuid.uuid4().hex[:8]}")
    session_id = server.new_session(token)
    with server.ws(token) as ws:
        events_until(ws, "connection")
        _kill_replicas("SafetyClassifier")
        _say(ws, session_id, "are you there")
        events = events_until(ws, "error", timeout=120)
        types = [e["type"] for e in events]
        assert types == ["user_message", "safety_escalation", "error"]
        assert events[1]["risk_level"] == "unknown"
        assert events[1]["emergency_resources"]["crisis_hotline"] == "988"
        assert events[2]["code"] == "safety_unavailable" and events[2]["retryable"] is True
        server.wait_ready()
        _say(ws, session_id, "are you there now")
        assert events_until(ws, "assistant_message_complete", timeout=180)
    texts = [m["text"] for m in server.messages(token, session_id)]
    assert texts[:2] == ["are you there", "are you there now"]


def test_connection_host_killed_is_rebuilt_from_storage(server: Server) -> None:
    token = server.register(f"host-{uuid.uuid4().hex[:8]}")
    session_id = server.new_session(token)
    ws = server.ws(token)
    events_until(ws, "connection")
    _say(ws, session_id, "I went for a walk in the park today")
    seen = events_until(ws, "assistant_message_complete", timeout=180)
    hosts = [
        n for n in ray.util.list_named_actors(all_namespaces=True) if "connection-host" in n["name"]
    ]
    assert hosts, "no connection host found"
    for host in hosts:
        _kill(host["name"], host["namespace"])
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=60)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    ws = _connect_retrying(server, token, f"&last_seq={seen[0]['seq'] - 1}")
    with ws:
        replay = events_until(ws, "resumed")
        assert replay[-1]["recovered"] is True
        assert [e["type"] for e in replay[:-1]] == [
            "user_message",
            "assistant_message_start",
            "assistant_message_complete",
        ]
        _say(ws, session_id, "I am back, and it is sunny out")
        after = events_until(ws, "assistant_message_complete", timeout=180)
    assert after[0]["seq"] > seen[-1]["seq"]
    roles = [m["role"] for m in server.messages(token, session_id)]
    assert roles == ["user", "assistant", "user", "assistant"]


def test_gateway_replica_killed_client_reconnects_and_resumes(server: Server) -> None:
    token = server.register(f"gw-{uuid.uuid4().hex[:8]}")
    session_id = server.new_session(token)
    ws = server.ws(token)
    events_until(ws, "connection")
    _say(ws, session_id, "something to remember")
    seen = events_until(ws, "assistant_message_complete", timeout=180)
    _kill_replicas("Gateway")
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=60)
    # The proxy tells the client its replica is gone with the retryable restart code.
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    ws = _connect_retrying(server, token, f"&last_seq={seen[0]['seq'] - 1}")
    with ws:
        replay = events_until(ws, "resumed")
        assert replay[-1]["recovered"] is True
        assert [e["seq"] for e in replay[:-1]] == [
            e["seq"] for e in seen if e["type"] != "assistant_message_chunk"
        ]
        _say(ws, session_id, "still here")
        assert events_until(ws, "assistant_message_complete", timeout=180)
    assert len(server.messages(token, session_id)) == 4


def test_gateway_rolling_restart_closes_1012_and_the_client_resumes(server: Server) -> None:
    token = server.register(f"roll-{uuid.uuid4().hex[:8]}")
    session_id = server.new_session(token)
    ws = server.ws(token)
    events_until(ws, "connection")
    _say(ws, session_id, "I planted tomatoes this morning")
    seen = events_until(ws, "assistant_message_complete", timeout=180)
    # A new Gateway version (as `serve deploy` with changed options rolls out): the old
    # replica stops gracefully while this socket is open on it.
    config = server.config()
    gateway = next(d for d in config.applications[0].deployments if d.name == "Gateway")
    assert gateway.ray_actor_options is not None
    gateway.ray_actor_options = gateway.ray_actor_options.model_copy(update={"num_cpus": 0.2})
    server.deploy(config)
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=120)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    ws = _connect_retrying(server, token, f"&last_seq={seen[-1]['seq']}")
    with ws:
        resumed = events_until(ws, "resumed")[-1]
        assert resumed["recovered"] is True and resumed["replayed"] == 0
        _say(ws, session_id, "and some basil")
        after = events_until(ws, "assistant_message_complete", timeout=180)
    assert after[0]["seq"] > seen[-1]["seq"]
    assert [m["role"] for m in server.messages(token, session_id)] == ["user", "assistant"] * 2
