"""The multi-node tier: Haven deployed on a three-node Ray cluster with PostgreSQL.

One Ray cluster at a time in this process: a driver connects to one cluster only (`ray.init`
while connected keeps the old connection), and two clusters on 2 cores would starve each other.
The integration tier's cluster is session-scoped and lives until the session ends, so this
tier's tests run before the integration tier's (the hook below) and its module-scoped cluster is
shut down before the integration tier starts its own. Should a cluster still be connected when
this tier starts (another order, another tier), the fixture shuts it down first.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import ray
from ray import serve

from deployments import proxy_hooks
from deployments.launch import deploy, wait_ready
from haven.storage import migrate
from tests import postgres as pg
from tests.integration.conftest import Server, free_port
from tests.multinode.cluster import FRONTEND, HavenCluster, deploy_config
from tests.openai_server import FakeOpenAIServer, Script
from tests.paths import MODEL_CACHE_DIR

SECRET = "multinode-secret-" + "x" * 32
# Eight pieces, 0.15 s apart: every turn is in flight for over a second.
REPLY = Script(
    pieces=("I hear ", "you. ", "It sounds ", "like a ", "lot to ", "carry. ", "Tell me ", "more."),
    delay_s=0.15,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Moves this tier's tests to just before the integration tier's, when both are selected."""
    here = Path(__file__).parent
    integration = here.parent / "integration"
    mine = [item for item in items if here in item.path.parents]
    rest = [item for item in items if here not in item.path.parents]
    first = next((i for i, item in enumerate(rest) if integration in item.path.parents), None)
    if mine and first is not None:
        items[:] = rest[:first] + mine + rest[first:]


@dataclass
class Deployed:
    cluster: HavenCluster
    server: Server
    database_url: str
    model: FakeOpenAIServer
    timings_s: dict[str, float] = field(default_factory=dict)


def _release_connected_cluster() -> None:
    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def haven(
    postgres_server: pg.Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    _release_connected_cluster()
    database = postgres_server.create_database()
    try:
        yield from _deployed(postgres_server.url(database), tmp_path_factory)
    finally:
        postgres_server.drop_database(database)


def _deployed(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    migrate.upgrade(database_url)
    with FakeOpenAIServer(REPLY) as model:
        args: dict[str, dict[str, Any]] = {
            "settings": {
                "environment": "test",
                "jwt_secret": SECRET,
                "data_dir": str(tmp_path_factory.mktemp("haven-data")),
                "database_url": database_url,
                "model_cache_dir": str(MODEL_CACHE_DIR),
                # Every test registers its own people from one address, all in one database.
                "registrations_per_address_per_hour": 10_000,
                "connection_hosts": 2,
                "connection_host_resources": {FRONTEND: 1},
                # Resends after the node loss come on top of the messages themselves.
                "message_burst": 50,
            },
            "generator": {
                "backend": "openai",
                "planner": False,
                "openai": {"base_url": model.base_url, "model": "scripted", "api_key_env": None},
            },
        }
        proxy_hooks.install()
        timings: dict[str, float] = {}
        started = time.perf_counter()
        cluster = HavenCluster()
        timings["cluster_start"] = time.perf_counter() - started
        server = Server(port=free_port(), config_args=args)
        try:
            started = time.perf_counter()
            deploy(deploy_config(server.port, args))
            wait_ready(server.port, timeout_s=240)
            timings["deploy_until_ready"] = time.perf_counter() - started
            yield Deployed(cluster, server, database_url, model, timings)
        finally:
            server.rest.close()
            cluster.shutdown()


def new_person(server: Server, prefix: str) -> tuple[str, str]:
    """A registered, logged-in person with one session: (token, session id)."""
    token = server.register(f"{prefix}-{uuid.uuid4().hex[:8]}")
    return token, server.new_session(token)
