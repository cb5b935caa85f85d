"""Connections through the real Serve proxy: resume, logout, MessagePack, the proxy's frame
limit and compression bombs, dead peers, and tokens and message text kept out of every log."""

from __future__ import annotations

import json
import time
import uuid
import zlib
from pathlib import Path

import msgpack
import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.conftest import PING_INTERVAL_S, PING_TIMEOUT_S, Server, events_until
from tests.raw_socket import silent_client

pytestmark = pytest.mark.integration


def _close_code(ws) -> int:  # type: ignore[no-untyped-def]
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=30)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def test_reply_finished_while_away_arrives_on_resume(server: Server) -> None:
    token = server.register(f"away-{uuid.uuid4().hex[:8]}")
    session_id = server.new_session(token)
    with server.ws(token) as ws:
        events_until(ws, "connection")
        ws.send(
            json.dumps(
                {
                    "type": "session_message",
                    "session_id": session_id,
                    "message_text": "I had a long day at work",
                }
            )
        )
        start = events_until(ws, "assistant_message_start")[-1]
    # Gone mid-reply; the reply is finished and stored without any socket.
    with server.ws(token, f"&last_seq={start['seq']}") as ws:
        events_until(ws, "connection")
        replay = events_until(ws, "resumed")
        if not any(e["type"] == "assistant_message_complete" for e in replay):
            replay += events_until(ws, "assistant_message_complete")
    complete = next(e for e in replay if e["type"] == "assistant_message_complete")
    assert complete["message_id"] == start["message_id"] and complete["message"]["text"]
    stored = server.messages(token, session_id)
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["text"] == complete["message"]["text"]


def test_logout_closes_the_tokens_sockets_within_a_second(server: Server) -> None:
    token = server.register(f"leaver-{uuid.uuid4().hex[:8]}")
    with server.ws(token) as ws:
        events_until(ws, "connection")
        response = server.rest.post("/auth/logout", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 204
        error = json.loads(ws.recv(timeout=1))
        assert error["code"] == "logged_out"
        assert _close_code(ws) == 4004


def test_messagepack_socket_through_the_proxy(server: Server) -> None:
    token = server.register(f"packer-{uuid.uuid4().hex[:8]}")
    with server.ws(token, subprotocols=["haven.msgpack.v1"]) as ws:
        assert ws.subprotocol == "haven.msgpack.v1"
        first = msgpack.unpackb(ws.recv(timeout=30))
        assert first["type"] == "connection"
        ws.send(msgpack.packb({"type": "ping"}))
        assert msgpack.unpackb(ws.recv(timeout=30))["type"] == "pong"


def test_permessage_deflate_is_negotiated_and_works(server: Server) -> None:
    token = server.register(f"deflate-{uuid.uuid4().hex[:8]}")
    with server.ws(token, compression="deflate") as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert "permessage-deflate" in extensions
        events_until(ws, "connection")
        ws.send(json.dumps({"type": "ping"}))
        assert events_until(ws, "pong")


def test_frame_over_64_kib_is_closed_1009_by_the_proxy(server: Server) -> None:
    token = server.register(f"big-{uuid.uuid4().hex[:8]}")
    with server.ws(token, compression=None) as ws:
        events_until(ws, "connection")
        ws.send("x" * (64 * 1024 + 1))
        assert _close_code(ws) == 1009


def test_compression_bomb_is_refused_without_inflating_it(server: Server) -> None:
    token = server.register(f"bomb-{uuid.uuid4().hex[:8]}")
    bomb = b"0" * (20 * 1024 * 1024)
    assert len(zlib.compress(bomb)) < 64 * 1024  # small on the wire
    with server.ws(token, compression="deflate", max_size=None) as ws:
        events_until(ws, "connection")
        ws.send(bomb.decode())
        assert _close_code(ws) == 1009
    # The socket was refused, not the server: a new one works.
    with server.ws(token) as ws:
        events_until(ws, "connection")


def test_tokens_and_message_text_never_appear_in_any_server_log(server: Server) -> None:
    import ray

    token = server.register(f"quiet-{uuid.uuid4().hex[:8]}")
    marker = f"marker-{uuid.uuid4().hex}"
    session_id = server.new_session(token)
    with server.ws(token) as ws:
        events_until(ws, "connection")
        # Through the classifier and the language model: neither may log what was written.
        ws.send(
            json.dumps(
                {"type": "session_message", "session_id": session_id, "message_text": marker}
            )
        )
        events_until(ws, "assistant_message_complete", timeout=180)
    with server.ws(None, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        events_until(ws, "connection")
    with server.ws(None) as ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        events_until(ws, "connection")
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    files = [p for p in logs.rglob("*") if p.is_file()]
    assert files, "no log files found, so the check below would prove nothing"
    for path in files:
        text = path.read_text(errors="replace")
        assert token not in text and marker not in text, path.name


def test_peers_that_stop_answering_pings_release_their_connection_slots(server: Server) -> None:
    token = server.register(f"ghost-{uuid.uuid4().hex[:8]}")
    # Five sockets (the per-user limit) whose peer completes the handshake and then goes
    # silent, as a phone that lost its network does.
    ghosts = [silent_client(server.port, f"/ws?token={token}") for _ in range(5)]
    try:
        with server.ws(token) as ws:
            assert _close_code(ws) == 4003  # the silent sockets hold every slot
        # Unanswered pings drop them (the tier pings every 3 s, waits 10 s for the pong).
        deadline = time.monotonic() + PING_INTERVAL_S + PING_TIMEOUT_S + 30
        while True:
            ws = server.ws(token)
            first = json.loads(ws.recv(timeout=30))
            if first["type"] == "connection":
                break
            ws.close()
            assert time.monotonic() < deadline, "the silent sockets were never released"
            time.sleep(3)  # within the new-connections-per-minute limit
        with ws:
            assert first["type"] == "connection"
    finally:
        for ghost in ghosts:
            ghost.close()
