"""The whole path on a real local Ray cluster: socket -> ConnectionActor -> safety -> reply."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.conftest import Server, events_until
from tests.paths import ROOT

pytestmark = pytest.mark.integration

CRISIS = (
    "I have saved up a bottle of pills and I am going to take all of them tonight. This is goodbye."
)


def send(ws, session_id: str, text: str) -> None:  # type: ignore[no-untyped-def]
    ws.send(json.dumps({"type": "session_message", "session_id": session_id, "message_text": text}))


def test_health_and_readiness_through_the_proxy(server: Server) -> None:
    assert httpx.get(f"{server.http}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.http}/readyz").json() == {"status": "ready"}


def test_turn_streams_a_real_reply_and_stores_it(server: Server) -> None:
    token = server.register("e2e-turn")
    session_id = server.new_session(token)
    with server.ws(token) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "connection"
        send(ws, session_id, "I feel anxious today")
        events = events_until(ws, "assistant_message_complete")
    types = [e["type"] for e in events]
    assert types[0] == "user_message" and "assistant_message_start" in types
    chunks = [e["chunk"] for e in events if e["type"] == "assistant_message_chunk"]
    assert len(chunks) >= 2
    complete = events[-1]["message"]
    assert complete["text"] and complete["text"] == "".join(chunks).strip()
    assert complete["risk_level"] in ("none", "low", "medium")
    stored = server.messages(token, session_id)
    assert [(m["role"], m["text"]) for m in stored] == [
        ("user", "I feel anxious today"),
        ("assistant", complete["text"]),
    ]


def test_crisis_message_escalates_before_the_reply(server: Server) -> None:
    token = server.register("e2e-crisis")
    session_id = server.new_session(token)
    with server.ws(token) as ws:
        ws.recv(timeout=30)
        send(ws, session_id, CRISIS)
        events = events_until(ws, "assistant_message_complete")
    types = [e["type"] for e in events]
    assert "safety_escalation" in types
    assert types.index("safety_escalation") < types.index("assistant_message_start")
    escalation = events[types.index("safety_escalation")]
    assert escalation["risk_level"] in ("high", "critical")
    assert escalation["emergency_resources"]["crisis_hotline"] == "988"
    assert events[-1]["message"]["intent"] == "crisis_support"
    assert "988" in events[-1]["message"]["text"]


def test_both_sockets_of_a_user_receive_the_stream_and_users_are_isolated(server: Server) -> None:
    ana, bob = server.register("e2e-ana"), server.register("e2e-bob")
    session_id = server.new_session(ana)
    with server.ws(ana) as phone, server.ws(ana) as laptop, server.ws(bob) as intruder:
        for ws in (phone, laptop, intruder):
            ws.recv(timeout=30)
        send(intruder, session_id, "reading someone else's session")
        assert events_until(intruder, "error")[-1]["code"] == "session_not_found"
        send(phone, session_id, "hello from my phone")
        on_phone = events_until(phone, "assistant_message_complete")
        on_laptop = events_until(laptop, "assistant_message_complete")
        assert on_phone[-1]["message"] == on_laptop[-1]["message"]
        intruder.send(json.dumps({"type": "ping"}))
        assert json.loads(intruder.recv(timeout=30))["type"] == "pong"
    assert server.messages(ana, session_id)[0]["text"] == "hello from my phone"


def test_more_sockets_than_five_stay_open_together(server: Server) -> None:
    tokens = [server.register(f"e2e-many-{n}") for n in range(3)]
    sockets = [server.ws(tokens[n % 3]) for n in range(12)]
    try:
        for ws in sockets:
            assert json.loads(ws.recv(timeout=30))["type"] == "connection"
        for ws in sockets:
            ws.send(json.dumps({"type": "ping"}))
        for ws in sockets:
            assert json.loads(ws.recv(timeout=30))["type"] == "pong"
    finally:
        for ws in sockets:
            ws.close()


def test_bad_frames_get_errors_and_the_socket_stays_open(server: Server) -> None:
    token = server.register("e2e-errors")
    session_id = server.new_session(token)
    frames = {
        "not json": "invalid_json",
        '{"type": "dance"}': "unknown_type",
        json.dumps({"type": "session_message", "session_id": session_id}): "invalid_message",
        json.dumps(
            {"type": "session_message", "session_id": session_id, "message_text": ""}
        ): "empty_message",
        json.dumps(
            {"type": "session_message", "session_id": session_id, "message_text": "x" * 5000}
        ): "message_too_long",
        '{"type": "session_message", "session_id": "nope", "message_text": "hi"}': "session_not_found",
    }
    with server.ws(token) as ws:
        ws.recv(timeout=30)
        for frame, code in frames.items():
            ws.send(frame)
            error = json.loads(ws.recv(timeout=30))
            assert (error["type"], error["code"]) == ("error", code)
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=30))["type"] == "pong"
    assert server.messages(token, session_id) == []


def test_invalid_token_gets_error_then_close_4001(server: Server) -> None:
    with server.ws("not-a-token") as ws:
        error = json.loads(ws.recv(timeout=30))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert error["code"] == "invalid_token"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


def test_seed_javascript_example_prints_the_streamed_reply(server: Server) -> None:
    node = shutil.which("node")
    assert node, "Node.js is required (installed with the system; see README)"
    token = server.register("e2e-node")
    session_id = server.new_session(token)
    source = (ROOT / "tests/js/seed_example.js").read_text()
    # Only the placeholders are filled in (and the port this test server listens on).
    script = (
        source.replace("your_jwt_token_here", token)
        .replace("session-uuid", session_id)
        .replace("localhost:3000", f"localhost:{server.port}")
    )
    runner = ROOT / "tests/js/.seed_run.js"
    runner.write_text(script)
    process = subprocess.Popen(
        [node, str(runner)],
        cwd=ROOT / "tests/js",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = _read_until(process, "Complete message:", timeout=120)
    finally:
        process.kill()
        process.wait()
        runner.unlink()
    assert "Connected to WebSocket" in output
    assert "Connection confirmed" in output
    stored = server.messages(token, session_id)
    assert [m["role"] for m in stored] == ["user", "assistant"]
    reply_first_line = stored[1]["text"].splitlines()[0].strip()
    streamed = output.split("Connection confirmed", 1)[1].split("Complete message:", 1)[0]
    # The reply was printed chunk by chunk first, then as the complete message.
    assert streamed.strip().startswith(reply_first_line)
    assert output.split("Complete message:", 1)[1].strip() == reply_first_line


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    output = ""
    with ThreadPoolExecutor(1) as pool:
        while time.monotonic() < deadline:
            line = pool.submit(process.stdout.readline).result(timeout=deadline - time.monotonic())
            if not line:
                break
            output += line
            if marker in output:
                # The complete message is printed on the same line as the marker.
                return output
    raise AssertionError(f"node did not print {marker!r}; output was:\n{output}")


def test_conversation_survives_an_application_restart(server: Server) -> None:
    from ray import serve

    token = server.register("e2e-restart")
    session_id = server.new_session(token)
    with server.ws(token) as ws:
        ws.recv(timeout=30)
        send(ws, session_id, "Please remember that my dog is called Biscuit.")
        events_until(ws, "assistant_message_complete")
    before = server.messages(token, session_id)
    serve.delete("haven")
    server.deploy()
    assert server.messages(token, session_id) == before
    with server.ws(token) as ws:
        ws.recv(timeout=30)
        send(ws, session_id, "What is my dog called?")
        events_until(ws, "assistant_message_complete")
    after = server.messages(token, session_id)
    assert after[:2] == before and [m["role"] for m in after[2:]] == ["user", "assistant"]
