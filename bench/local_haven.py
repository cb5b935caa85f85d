"""Haven started by a benchmark: serve_config.yaml on a local Ray cluster, a throwaway database.

The same steps as the integration tests (`tests/integration/conftest.py`) and `make serve`:
migrate a fresh SQLite file, install the proxy's WebSocket limits, start Ray in this process,
deploy the config with the benchmark's overrides, wait for `/readyz`. Everything is torn down
when the `with` block ends.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.serve.schema import ServeDeploySchema

from deployments.launch import load_config

READY_TIMEOUT_S = 300
GENERATOR = "ResponseGenerator"

# A benchmark user sends a message every few seconds for minutes: lift the per-user message
# bucket so that rate limiting never shows up in the timings.
BENCH_SETTINGS: dict[str, Any] = {"message_burst": 1000, "message_rate_per_s": 100.0}


@dataclass(frozen=True)
class LocalHaven:
    url: str
    app_name: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def generator_env(config: ServeDeploySchema) -> dict[str, str]:
    """The environment variables serve_config.yaml gives the ResponseGenerator's replica."""
    for app in config.applications:
        for deployment in app.deployments:
            if deployment.name != GENERATOR:
                continue
            options = deployment.ray_actor_options
            runtime_env = getattr(options, "runtime_env", None) or {}
            env_vars = runtime_env.get("env_vars") or {}
            return {str(k): str(v) for k, v in env_vars.items()}
    return {}


def server_settings(data_dir: Path, model_cache_dir: Path) -> dict[str, Any]:
    """Settings overrides for a throwaway Haven whose data lives in `data_dir`."""
    return {
        **BENCH_SETTINGS,
        "environment": "test",
        "jwt_secret": secrets.token_urlsafe(48),
        "master_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        "data_dir": str(data_dir),
        "database_url": f"sqlite+aiosqlite:///{data_dir / 'haven.db'}",
        "model_cache_dir": str(model_cache_dir.resolve()),
        # Every simulated person registers from this one address.
        "registrations_per_address_per_hour": 100_000,
    }


@contextmanager
def local_haven(
    config_path: Path, args: dict[str, dict[str, Any]], port: int | None = None
) -> Iterator[LocalHaven]:
    """Haven from `config_path` with application `args` overridden (section -> fields), as
    `load_config` takes them. `args["settings"]` needs at least `data_dir` and `database_url`
    (`server_settings`)."""
    import ray
    from ray import serve
    from ray.serve._private.constants import SERVE_NAMESPACE

    from deployments import proxy_hooks
    from deployments.launch import deploy, wait_ready
    from haven.storage import migrate

    port = port or free_port()
    config = load_config(config_path, port=port, args=args)
    migrate.upgrade(args["settings"]["database_url"])
    # The proxy reads its WebSocket limits from the environment Ray's processes inherit.
    proxy_hooks.install()
    ray.init(address="local", namespace=SERVE_NAMESPACE, include_dashboard=False)
    try:
        deploy(config)
        wait_ready(port, timeout_s=READY_TIMEOUT_S)
        yield LocalHaven(url=f"http://127.0.0.1:{port}", app_name=config.applications[0].name)
    finally:
        serve.shutdown()
        ray.shutdown()


@contextmanager
def temp_data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="haven-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def apply_env(env: dict[str, str]) -> dict[str, str]:
    """Sets `env` in this process where unset (before torch is imported); returns what applies."""
    for key, value in env.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in env}
