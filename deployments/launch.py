"""`make serve`: migrate the database, start Ray, deploy `serve_config.yaml`, wait until ready.

The same steps as `serve run serve_config.yaml`, plus what a foreground service needs: `PORT`
overrides the config's port, relative paths become absolute before any Ray worker starts (their
working directory differs), readiness is logged, and Ctrl-C stops everything cleanly. Every Ray
worker of the job logs JSON lines, and the node serves Prometheus metrics on a fixed port
(`--metrics-export-port`, `METRICS_EXPORT_PORT`; docs/operations.md, "Metrics").
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import ray
import yaml
from ray import serve
from ray.serve._private import api as serve_api
from ray.serve._private.constants import SERVE_NAMESPACE
from ray.serve.schema import ServeDeploySchema

from deployments import proxy_hooks, stopping
from haven.settings import Settings
from haven.storage import migrate

logger = logging.getLogger("haven.launch")

DEFAULT_PORT = 3000
# The port Ray's own docs scrape; clear of the Gateway (3000), Serve's default (8000) and the
# dashboard (8265). Ray itself would pick a random one.
DEFAULT_METRICS_EXPORT_PORT = 8080
READY_TIMEOUT_S = 300


def ray_init_options(address: str, metrics_export_port: int | None) -> dict[str, Any]:
    """`ray.init` arguments: JSON logs for every worker of the job (Ray's formatter writes each
    record's `extra=` fields as keys) and, for a cluster started here, the node's metrics
    endpoint on `metrics_export_port`. A running cluster keeps the port its nodes were started
    with (`ray start --metrics-export-port`)."""
    options: dict[str, Any] = {
        "address": address,
        "namespace": SERVE_NAMESPACE,
        "include_dashboard": False,
        "logging_config": ray.LoggingConfig(encoding="JSON", log_level="INFO"),
    }
    if address == "local" and metrics_export_port is not None:
        options["_metrics_export_port"] = metrics_export_port
    return options


def load_config(
    path: Path, *, port: int | None = None, args: dict[str, dict[str, Any]] | None = None
) -> ServeDeploySchema:
    """The deploy config from `path`, with the HTTP port and application args overridden
    (`args` maps a section of the app's args, e.g. "settings", to the fields to replace)."""
    raw = yaml.safe_load(path.read_text())
    if port is not None:
        raw.setdefault("http_options", {})["port"] = port
    for app in raw["applications"]:
        for section, fields in (args or {}).items():
            app.setdefault("args", {}).setdefault(section, {}).update(fields)
    return ServeDeploySchema.model_validate(raw)


def deploy(config: ServeDeploySchema) -> None:
    """Start Serve on the connected Ray cluster and deploy every application in `config`."""
    client = serve_api.serve_start(
        http_options=config.http_options.model_dump(),
        proxy_location=config.proxy_location,
    )
    client.deploy_apps(config, _blocking=False)


def wait_ready(port: int, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    url = f"http://127.0.0.1:{port}/readyz"
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=15).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"Haven was not ready on port {port} within {timeout_s:.0f} s")


def stop(config: ServeDeploySchema) -> None:
    """Stops the applications so that every client hears it (`deployments.stopping`): sockets
    closed with 1012 first, then the applications deleted while the proxies still run, then
    Serve itself. Signals are ignored meanwhile, so a second Ctrl-C cannot cut it short."""
    started = time.monotonic()
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            stopping.stop_applications([app.name for app in config.applications])
        except Exception:
            logger.warning("could not stop the applications gracefully", exc_info=True)
        serve.shutdown()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logger.info("Haven stopped in %.1f s", time.monotonic() - started)


def _absolute_paths() -> None:
    for name, default in (("HAVEN_DATA_DIR", ".data"), ("HAVEN_MODEL_CACHE_DIR", ".cache/models")):
        os.environ[name] = str(Path(os.environ.get(name, default)).resolve())


def _stop_on_signals() -> None:
    def _raise(*_: object) -> None:
        raise KeyboardInterrupt

    # Also for SIGINT: a shell starting us in the background would otherwise have it ignored.
    signal.signal(signal.SIGINT, _raise)
    signal.signal(signal.SIGTERM, _raise)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run Haven on a local Ray cluster.")
    parser.add_argument("--config", type=Path, default=Path("serve_config.yaml"))
    parser.add_argument(
        "--metrics-export-port",
        type=int,
        default=int(os.environ.get("METRICS_EXPORT_PORT", DEFAULT_METRICS_EXPORT_PORT)),
        help="port of this node's Prometheus endpoint (default: $METRICS_EXPORT_PORT or 8080)",
    )
    args = parser.parse_args(argv)
    port = int(os.environ.get("PORT", DEFAULT_PORT))
    if args.metrics_export_port == port or not 0 < args.metrics_export_port < 65536:
        parser.error(f"--metrics-export-port must be a free port other than PORT ({port})")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    _stop_on_signals()
    _absolute_paths()
    settings = Settings()  # refuses unsafe settings before anything starts
    migrate.upgrade(settings.resolved_database_url)
    config = load_config(args.config, port=port)

    # The proxy reads its WebSocket limits from the node's environment, not from the app.
    os.environ.setdefault("HAVEN_MAX_FRAME_BYTES", str(settings.max_frame_bytes))
    os.environ.setdefault("HAVEN_OUTBOUND_QUEUE_BYTES", str(settings.outbound_queue_bytes))
    proxy_hooks.install()
    address = os.environ.get("RAY_ADDRESS", "local")
    # Plain-text lines until Ray starts; from then on Ray's JSON handler writes the driver's.
    text_handlers = list(logging.getLogger().handlers)
    ray.init(**ray_init_options(address, args.metrics_export_port))
    for handler in text_handlers:
        logging.getLogger().removeHandler(handler)
    try:
        deploy(config)
        logger.info("deploying %s; loading the models", args.config)
        wait_ready(port)
        logger.info("Haven is ready: ws://localhost:%d/ws?token=JWT  (REST docs: /docs)", port)
        if address == "local":
            logger.info(
                "Prometheus metrics (Haven's are ray_haven_*): http://localhost:%d/metrics",
                args.metrics_export_port,
            )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        logger.info("stopping Haven")
    finally:
        stop(config)
        ray.shutdown()


if __name__ == "__main__":
    main()
