"""Health data through the real cluster: a marker sent over the socket is sealed in the SQLite
file, comes back in the person's export, and `DELETE /me` closes the person's socket with 4010
through the connection host (a Ray actor) and leaves their name unknown to login."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from haven.storage.database import sqlite_path
from tests.integration.conftest import Server, events_until
from tests.rest_client import PASSWORD

pytestmark = pytest.mark.integration

MARKER = "qx-marker-8830 I have not told anyone this"


def _database_bytes(server: Server) -> bytes:
    path = sqlite_path(server.config_args["settings"]["database_url"])
    assert path is not None
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def test_sealed_at_rest_exported_then_erased_with_4010(server: Server) -> None:
    name = f"private-{uuid.uuid4().hex[:8]}"
    token = server.register(name)
    auth = {"Authorization": f"Bearer {token}"}
    session_id = server.new_session(token)
    with server.ws(token) as ws:
        events_until(ws, "connection")
        frame = {"type": "session_message", "session_id": session_id, "message_text": MARKER}
        ws.send(json.dumps(frame))
        events_until(ws, "assistant_message_complete")
        # The turn's frames reach the event log write-behind, within moments.
        time.sleep(1.0)
        assert b"qx-marker-8830" not in _database_bytes(server)
        assert server.messages(token, session_id)[0]["text"] == MARKER

        exported = server.rest.get("/me/export", headers=auth)
        assert exported.status_code == 200
        [session] = exported.json()["sessions"]
        assert session["messages"][0]["text"] == MARKER

        erased = server.rest.request("DELETE", "/me", headers=auth, json={"password": PASSWORD})
        assert erased.status_code == 204
        error = json.loads(ws.recv(timeout=5))
        assert error["code"] == "account_deleted"
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4010
    login = server.rest.post("/auth/login", json={"username": name, "password": PASSWORD})
    assert login.status_code == 401 and login.json()["code"] == "invalid_credentials"
