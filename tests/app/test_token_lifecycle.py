"""Tokens by URL, header or first frame; expiry warnings, refresh on the socket, logout."""

from __future__ import annotations

import logging
import time
import uuid

import jwt
import pytest
from starlette.websockets import WebSocketDisconnect

from tests.app.conftest import SECRET, Harness, SettingsFactory, build_harness
from tests.app.wire import until


def _closed(ws) -> tuple[dict, int]:  # type: ignore[no-untyped-def, type-arg]
    error = ws.receive_json()
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    return error, closed.value.code


def _token(user_id: str, lifetime_s: float) -> str:
    now = time.time()
    claims = {"sub": user_id, "iat": int(now), "exp": now + lifetime_s, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _user_id(harness: Harness, token: str) -> str:
    return harness.services.tokens.verify(token).user_id


def test_token_in_an_authorization_header_is_accepted(harness: Harness) -> None:
    token = harness.register("ana")
    with harness.client.websocket_connect(
        "/ws", headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        assert until(ws, "connection")


def test_token_as_the_first_frame_is_accepted(harness: Harness) -> None:
    token = harness.register("ana")
    with harness.client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "auth", "token": token})
        assert until(ws, "connection")
        ws.send_json({"type": "ping"})
        assert until(ws, "pong")


def test_first_frame_that_is_not_auth_closes_4001(harness: Harness) -> None:
    with harness.client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "ping"})
        error, code = _closed(ws)
    assert error["code"] == "invalid_token" and code == 4001


def test_no_token_within_the_auth_timeout_closes_4001(app_settings: SettingsFactory) -> None:
    for harness in build_harness(app_settings(auth_timeout_s=0.3)):
        with harness.client.websocket_connect("/ws") as ws:
            error, code = _closed(ws)
        assert error["code"] == "invalid_token" and code == 4001


def test_expiring_token_is_announced_then_the_socket_closes_4002(
    app_settings: SettingsFactory,
) -> None:
    settings = app_settings(token_expiring_lead_s=1.0, token_grace_s=0.2)
    for harness in build_harness(settings):
        user_id = _user_id(harness, harness.register("ana"))
        with harness.client.websocket_connect(f"/ws?token={_token(user_id, 1.5)}") as ws:
            until(ws, "connection")
            expiring = ws.receive_json()
            assert expiring["type"] == "token_expiring" and expiring["grace_s"] == 0.2
            error, code = _closed(ws)
        assert error["code"] == "invalid_token" and error["retryable"] is True
        assert code == 4002


def test_fresh_token_on_the_open_socket_keeps_it_open(app_settings: SettingsFactory) -> None:
    settings = app_settings(token_expiring_lead_s=1.0, token_grace_s=0.2)
    for harness in build_harness(settings):
        user_id = _user_id(harness, harness.register("ana"))
        with harness.client.websocket_connect(f"/ws?token={_token(user_id, 1.5)}") as ws:
            until(ws, "connection")
            assert ws.receive_json()["type"] == "token_expiring"
            ws.send_json({"type": "auth", "token": _token(user_id, 600)})
            assert until(ws, "authenticated")
            time.sleep(1.0)  # past the first token's expiry and grace
            ws.send_json({"type": "ping"})
            assert ws.receive_json()["type"] == "pong"


def test_fresh_token_of_another_user_is_refused(harness: Harness) -> None:
    ana, bob = harness.register("ana"), harness.register("bob")
    with harness.client.websocket_connect(f"/ws?token={ana}") as ws:
        until(ws, "connection")
        ws.send_json({"type": "auth", "token": bob})
        assert until(ws, "error")[-1]["code"] == "invalid_token"


def test_logout_closes_every_socket_of_that_token_and_only_those(harness: Harness) -> None:
    first, second = harness.register("ana"), harness.login("ana")
    headers = {"Authorization": f"Bearer {first}"}
    with (
        harness.client.websocket_connect(f"/ws?token={first}") as a1,
        harness.client.websocket_connect(f"/ws?token={first}") as a2,
        harness.client.websocket_connect(f"/ws?token={second}") as other,
    ):
        for ws in (a1, a2, other):
            until(ws, "connection")
        assert harness.client.post("/auth/logout", headers=headers).status_code == 204
        for ws in (a1, a2):
            error, code = _closed(ws)
            assert error["code"] == "logged_out" and code == 4004
        other.send_json({"type": "ping"})
        assert until(other, "pong")
    assert harness.client.get("/sessions", headers=headers).status_code == 401
    with harness.client.websocket_connect(f"/ws?token={first}") as ws:
        assert _closed(ws)[1] == 4004


def test_tokens_never_appear_in_logs(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    token = harness.register("ana")
    caplog.set_level(logging.DEBUG)
    with harness.client.websocket_connect(f"/ws?token={token}") as ws:
        until(ws, "connection")
    with harness.client.websocket_connect(
        "/ws", headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        until(ws, "connection")
    with harness.client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "auth", "token": token})
        until(ws, "connection")
    with harness.client.websocket_connect(f"/ws?token={token}x") as ws:
        _closed(ws)
    # The in-process test client (httpx) logs its own request URLs; the server's lines are
    # what must stay clean. The real-server tests check the proxy's logs too.
    server_records = [r for r in caplog.records if not r.name.startswith("httpx")]
    # The refused token's socket is logged by Haven itself (the database driver's chatter, on
    # SQLite only, would not do: on PostgreSQL there is none).
    assert any(r.name.startswith("deployments.") for r in server_records), (
        "nothing was logged, so the check below proves nothing"
    )
    for record in server_records:
        assert token not in record.getMessage()
        assert token not in str(record.exc_text or "")
