"""A stop that every client hears: sockets closed with 1012 while the Serve proxy still runs.

`serve.shutdown()` kills the proxies at once, while the replicas are still waiting for their
open requests (every WebSocket is one) to end; a socket's own close frame then has no way out
and clients see the connection drop (1006). So the launcher stops in this order:

1. `request_stop` writes the moment of the stop to Ray's GCS key-value store;
2. every Gateway replica watches for it (`watch_for_stop`) and closes its sockets with 1012
   ("service restart"), so clients reconnect and resume once Haven is back;
3. `serve.delete` of the application then finds no open requests and stops the replicas at
   once (waiting `graceful_shutdown_timeout_s` at most); only then do the proxies go.

The flag lives in Ray's internal key-value store, as Serve keeps its own state there; it is not
a public API, so `tests/integration/test_graceful_stop.py` fails if an upgrade changes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

NAMESPACE = b"haven"
POLL_S = 0.25


def _key(app_name: str) -> bytes:
    return f"stop:{app_name}".encode()


def request_stop(app_name: str) -> None:
    """Tells the Gateway replicas of `app_name` to close their sockets (driver side)."""
    from ray.experimental import internal_kv

    internal_kv._internal_kv_put(
        _key(app_name), str(time.time()).encode(), overwrite=True, namespace=NAMESPACE
    )


def _stop_requested_at(app_name: str) -> float | None:
    from ray.experimental import internal_kv

    value = internal_kv._internal_kv_get(_key(app_name), namespace=NAMESPACE)
    return float(value) if value else None


async def watch_for_stop(
    app_name: str, started_at: float, on_stop: Callable[[], Awaitable[None]]
) -> None:
    """Runs `on_stop` once a stop is requested after `started_at` (a stop of an earlier run
    of the same application is ignored)."""
    while True:
        try:
            requested = await asyncio.to_thread(_stop_requested_at, app_name)
        except Exception:
            # The GCS is briefly unreachable (a head restart): look again at the next poll.
            logger.debug("could not read the stop flag", exc_info=True)
            requested = None
        if requested is not None and requested >= started_at:
            logger.info("stop requested: closing this replica's sockets with 1012")
            await on_stop()
            return
        await asyncio.sleep(POLL_S)


def stop_applications(app_names: list[str]) -> None:
    """On a running cluster: close every socket of these applications with 1012, then delete
    them while the proxies still run. Then `serve shutdown` (or a new deploy) drops nobody."""
    from ray import serve

    for name in app_names:
        request_stop(name)
        serve.delete(name)
        logger.info("stopped %s", name)


def main(argv: list[str] | None = None) -> int:
    import argparse

    import ray
    from ray.serve._private.constants import SERVE_NAMESPACE

    parser = argparse.ArgumentParser(
        prog="python -m deployments.stopping",
        description="Stop Haven on a running Ray cluster so that every client hears 1012.",
    )
    parser.add_argument("apps", nargs="*", default=["haven"], help="application names")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    ray.init(address="auto", namespace=SERVE_NAMESPACE, include_dashboard=False)
    try:
        stop_applications(args.apps)
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
