"""One real local Ray cluster with Haven deployed from serve_config.yaml and the real models,
shared by the whole integration tier."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import ray
from ray import serve
from ray.serve.schema import ServeDeploySchema
from websockets.sync.client import ClientConnection, connect

from deployments import proxy_hooks
from deployments.launch import deploy, load_config, ray_init_options, wait_ready
from haven.storage import migrate
from tests.paths import MODEL_CACHE_DIR, ROOT
from tests.rest_client import RestSteps

SECRET = "integration-secret-" + "x" * 32
PING_INTERVAL_S = 3
PING_TIMEOUT_S = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server(RestSteps):
    def __init__(
        self, port: int, config_args: dict[str, dict[str, Any]], metrics_port: int | None = None
    ) -> None:
        self.port = port
        self.config_args = config_args
        # The node's Prometheus endpoint: http://127.0.0.1:<metrics_port>/metrics
        self.metrics_port = metrics_port
        self.http = f"http://127.0.0.1:{port}"
        # Registration hashes with argon2 on a busy 2-core machine: allow it time.
        super().__init__(httpx.Client(base_url=self.http, timeout=30))

    def ws(self, token: str | None, query: str = "", **options: Any) -> ClientConnection:
        url = f"ws://127.0.0.1:{self.port}/ws?token={token or ''}{query}"
        return connect(url, open_timeout=30, **options)

    def wait_ready(self) -> None:
        wait_ready(self.port, timeout_s=240)

    def config(self) -> ServeDeploySchema:
        return load_config(ROOT / "serve_config.yaml", port=self.port, args=self.config_args)

    def deploy(self, config: ServeDeploySchema | None = None) -> None:
        deploy(config or self.config())
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
            # A replica that is gone fails the turn closed quickly rather than after 10 s.
            "safety_timeout_s": 5,
            "jwt_secret": SECRET,
            "data_dir": str(data_dir),
            "database_url": database_url,
            "model_cache_dir": str(MODEL_CACHE_DIR),
            # Every test registers its own people from 127.0.0.1, all in one database.
            "registrations_per_address_per_hour": 10_000,
        },
        # Short replies keep the tier fast; the length bound itself is tested in the unit tier.
        # One streamed sample: this tier checks streaming through the whole stack (the web
        # client watches a reply grow). Drafting is tested in the unit tier with the real model
        # (tests/unit/test_reply_service.py, test_reply_candidates.py) and measured by
        # `models.llm.evaluate`.
        "generator": {"max_new_tokens": 24, "candidates": 1},
    }
    # The proxy's WebSocket limits come from the environment Ray's processes inherit. Short
    # pings let the tier see a dead peer dropped; real clients answer them in the background.
    os.environ.setdefault("HAVEN_WS_PING_INTERVAL_S", str(PING_INTERVAL_S))
    os.environ.setdefault("HAVEN_WS_PING_TIMEOUT_S", str(PING_TIMEOUT_S))
    proxy_hooks.install()
    # As `make serve` starts Ray: JSON logs, and metrics on a port of its own.
    metrics_port = free_port()
    ray.init(**ray_init_options("local", metrics_port))
    server = Server(port=free_port(), config_args=args, metrics_port=metrics_port)
    try:
        server.deploy()
        yield server
    finally:
        server.rest.close()
        serve.shutdown()
        ray.shutdown()
