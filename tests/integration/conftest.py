"""One real local Ray cluster with Haven deployed from serve_config.yaml and the real models,
shared by the whole integration tier."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
from ray import serve
from ray.serve._private.constants import SERVE_NAMESPACE
from websockets.sync.client import ClientConnection, connect

from deployments.launch import deploy, load_config, wait_ready
from haven.storage import migrate

ROOT = Path(__file__).resolve().parents[2]
SECRET = "integration-secret-" + "x" * 32
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    port: int
    data_dir: Path
    config_args: dict[str, dict[str, Any]]

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, token: str) -> ClientConnection:
        return connect(f"ws://127.0.0.1:{self.port}/ws?token={token}", open_timeout=30)

    def register(self, username: str) -> str:
        created = httpx.post(
            f"{self.http}/auth/register", json={"username": username, "password": PASSWORD}
        )
        assert created.status_code == 201, created.text
        login = httpx.post(
            f"{self.http}/auth/login", json={"username": username, "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        token: str = login.json()["access_token"]
        return token

    def new_session(self, token: str) -> str:
        response = httpx.post(f"{self.http}/sessions", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 201, response.text
        session_id: str = response.json()["id"]
        return session_id

    def messages(self, token: str, session_id: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.http}/sessions/{session_id}/messages",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result

    def deploy(self) -> None:
        deploy(load_config(ROOT / "serve_config.yaml", port=self.port, args=self.config_args))
        wait_ready(self.port, timeout_s=240)


def events_until(
    ws: ClientConnection, event_type: str, timeout: float = 120
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        event = json.loads(ws.recv(timeout=timeout))
        events.append(event)
        if event["type"] == event_type:
            return events


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("haven-data")
    database_url = f"sqlite+aiosqlite:///{data_dir / 'haven.db'}"
    migrate.upgrade(database_url)
    args: dict[str, dict[str, Any]] = {
        "settings": {
            "environment": "test",
            "jwt_secret": SECRET,
            "data_dir": str(data_dir),
            "database_url": database_url,
            "model_cache_dir": str(ROOT / ".cache" / "models"),
        },
        # Short replies keep the tier fast; the length bound itself is tested in the unit tier.
        "generator": {"max_new_tokens": 24},
    }
    ray.init(address="local", namespace=SERVE_NAMESPACE, include_dashboard=False)
    server = Server(port=free_port(), data_dir=data_dir, config_args=args)
    try:
        server.deploy()
        yield server
    finally:
        serve.shutdown()
        ray.shutdown()
