"""Health data through the real cluster: a marker sent over the socket is sealed in the SQLite
file, comes back in the person's export, and `DELETE /me` closes the person's socket with 4010
through the connection host (a Ray actor) and leaves their name unknown to login; the operator's
`haven users delete`, which reaches only the database, closes the socket with 4010 too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from haven.settings import Settings
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


def test_operator_erasure_closes_the_open_socket_with_4010(server: Server) -> None:
    name = f"operator-erased-{uuid.uuid4().hex[:8]}"
    token = server.register(name)
    settings = server.config_args["settings"]
    check_s = Settings.model_fields["account_check_s"].default
    haven = Path(sys.executable).parent / "haven"
    command = [str(haven), "users", "delete", name, "--yes"]
    command += ["--database-url", settings["database_url"]]
    with server.ws(token) as ws:
        events_until(ws, "connection")
        done = subprocess.run(
            command,
            env=os.environ | {"HAVEN_DATA_DIR": settings["data_dir"]},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert f"erased {name}" in done.stdout
        erased_at = time.monotonic()
        # The service was not told: its connection host finds the account gone at its next
        # check. Left open, the socket would last as long as its token (an hour).
        error = events_until(ws, "error", timeout=check_s + 30)[-1]
        assert error["code"] == "account_deleted"
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4010
        print(f"closed {time.monotonic() - erased_at:.1f} s after the erasure")
    login = server.rest.post("/auth/login", json={"username": name, "password": PASSWORD})
    assert login.status_code == 401 and login.json()["code"] == "invalid_credentials"
