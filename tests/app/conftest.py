"""The Gateway app in-process: real storage and auth, fake model deployments.

Every test here runs twice, on SQLite and on PostgreSQL (`database_url`, tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from actors.host import LocalConnections
from deployments.gateway import create_app
from deployments.services import GatewayServices
from haven.auth import TokenService
from haven.settings import Settings
from haven.storage import migrate
from haven.storage.store import Store
from tests.fakes import FakeAssessor, FakeGenerator
from tests.rest_client import RestSteps

SECRET = "s" * 48


SettingsFactory = Callable[..., Settings]


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "jwt_secret": SECRET,
        "data_dir": tmp_path,
        "database_url": database_url,
    }
    return Settings(**(values | overrides))


@pytest.fixture
def app_settings(tmp_path: Path, database_url: str) -> SettingsFactory:
    """Settings for this test's database, with the given fields overridden."""

    def make(**overrides: Any) -> Settings:
        return make_settings(tmp_path, database_url, **overrides)

    return make


class Harness(RestSteps):
    def __init__(
        self,
        client: TestClient,
        services: GatewayServices,
        assessor: FakeAssessor,
        generator: FakeGenerator,
    ) -> None:
        super().__init__(client)
        self.client = client
        self.services = services
        self.assessor = assessor
        self.generator = generator

    @property
    def connections(self) -> LocalConnections:
        connections = self.services.connections
        assert isinstance(connections, LocalConnections)
        return connections


def build_harness(settings: Settings) -> Iterator[Harness]:
    migrate.upgrade(settings.resolved_database_url)
    from models.safety.output_screen import unsafe_reply

    store = Store.from_url(settings.resolved_database_url)
    assessor, generator = FakeAssessor(), FakeGenerator()
    connections = LocalConnections(settings, store, assessor, generator, unsafe_reply)

    async def ready() -> bool:
        return True

    services = GatewayServices(
        settings=settings,
        store=store,
        tokens=TokenService(SECRET, settings.access_token_ttl_s),
        connections=connections,
        readiness=ready,
        forget_session=generator.forget,
    )
    with TestClient(create_app(services)) as client:
        yield Harness(client, services, assessor, generator)


@pytest.fixture
def harness(app_settings: SettingsFactory) -> Iterator[Harness]:
    yield from build_harness(app_settings())
