"""The Gateway app in-process: real storage and auth, fake model deployments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from actors.host import ConnectionHostCore, LocalConnections
from deployments.gateway import create_app
from deployments.services import GatewayServices
from haven.auth import TokenService
from haven.settings import Settings
from haven.storage import migrate
from haven.storage.store import Store
from tests.fakes import FakeAssessor, FakeGenerator

SECRET = "s" * 48
PASSWORD = "correct horse battery"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "jwt_secret": SECRET,
        "data_dir": tmp_path,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'haven.db'}",
    }
    return Settings(**(values | overrides))


class Harness:
    def __init__(self, client: TestClient, services: GatewayServices) -> None:
        self.client = client
        self.services = services
        self.assessor: FakeAssessor = services.connections.core._assessor  # type: ignore[attr-defined]
        self.generator: FakeGenerator = services.connections.core._generator  # type: ignore[attr-defined]

    def register(self, username: str) -> str:
        response = self.client.post(
            "/auth/register", json={"username": username, "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        login = self.client.post("/auth/login", json={"username": username, "password": PASSWORD})
        assert login.status_code == 200, login.text
        token: str = login.json()["access_token"]
        return token

    def new_session(self, token: str) -> str:
        response = self.client.post("/sessions", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 201, response.text
        session_id: str = response.json()["id"]
        return session_id

    def messages(self, token: str, session_id: str) -> list[dict[str, Any]]:
        response = self.client.get(
            f"/sessions/{session_id}/messages", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result


def build_harness(settings: Settings) -> Iterator[Harness]:
    migrate.upgrade(settings.resolved_database_url)
    store = Store.from_url(settings.resolved_database_url)
    core = ConnectionHostCore(settings, store, FakeAssessor(), FakeGenerator())

    async def ready() -> bool:
        return True

    services = GatewayServices(
        settings=settings,
        store=store,
        tokens=TokenService(SECRET, settings.access_token_ttl_s),
        connections=LocalConnections(core),
        readiness=ready,
    )
    with TestClient(create_app(services)) as client:
        yield Harness(client, services)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    yield from build_harness(make_settings(tmp_path))
