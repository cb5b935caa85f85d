"""WebSocket limits for the Serve proxy's own uvicorn server.

Ray Serve 2.60 starts uvicorn in each proxy with uvicorn's WebSocket defaults (16 MiB messages,
permessage-deflate on, 20 s pings) and offers no setting for them. The frame limit has to be
applied there, in the proxy: only the WebSocket implementation can refuse an oversized frame from
its header, and stop inflating a compressed one ("compression bomb") at the limit. Behind the
proxy, Haven checks the size again (`deployments.websocket`), but by then the frame is inflated.

Serve calls the function named by `RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH` in every proxy
process before it builds `uvicorn.Config`; `limit_proxy_websockets` makes the `ws_*` arguments
default to the values below, read from the environment of the Ray node:

- `HAVEN_MAX_FRAME_BYTES` (default 65536): larger frames are closed with 1009.
- `HAVEN_WS_PER_MESSAGE_DEFLATE` (default true): `false` turns permessage-deflate off.
- `HAVEN_WS_PING_INTERVAL_S` / `HAVEN_WS_PING_TIMEOUT_S` (default 20 / 20): protocol pings;
  a peer that does not answer in time is dropped. `0` turns them off.

This relies on Serve's internals (the callback runs first, Serve passes no `ws_*` arguments);
`tests/integration/test_transport.py` fails if a Ray upgrade changes that.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
CALLBACK_PATH = "deployments.proxy_hooks:limit_proxy_websockets"
DEFAULTS = {
    "HAVEN_MAX_FRAME_BYTES": "65536",
    "HAVEN_WS_PER_MESSAGE_DEFLATE": "true",
    "HAVEN_WS_PING_INTERVAL_S": "20",
    "HAVEN_WS_PING_TIMEOUT_S": "20",
}

logger = logging.getLogger(__name__)


def proxy_websocket_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """uvicorn `Config` keyword arguments for the WebSocket settings in `env` (or defaults)."""
    values = {name: env.get(name, default) for name, default in DEFAULTS.items()}
    overrides: dict[str, Any] = {
        "ws_max_size": int(values["HAVEN_MAX_FRAME_BYTES"]),
        "ws_per_message_deflate": values["HAVEN_WS_PER_MESSAGE_DEFLATE"].strip().lower()
        in {"1", "true", "yes", "on"},
    }
    for name, key in (
        ("HAVEN_WS_PING_INTERVAL_S", "ws_ping_interval"),
        ("HAVEN_WS_PING_TIMEOUT_S", "ws_ping_timeout"),
    ):
        value = values[name].strip().lower()
        # uvicorn takes None (not 0) to turn keepalive pings off.
        overrides[key] = None if value in {"", "0", "none", "off"} else float(value)
    return overrides


def install(env: dict[str, str] | None = None) -> None:
    """Names the callback for proxies started from this process (before `ray.init`)."""
    target = os.environ if env is None else env
    target.setdefault(CALLBACK_ENV, CALLBACK_PATH)


def limit_proxy_websockets() -> list[Any]:
    """Target of `RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`; adds no middleware."""
    import uvicorn

    overrides = proxy_websocket_overrides(os.environ)
    original = uvicorn.Config.__init__
    if getattr(original, "_haven_ws_overrides", None) is not None:
        return []

    def patched_init(self: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        for key, value in overrides.items():
            # An argument Serve passes explicitly wins over ours.
            kwargs.setdefault(key, value)
        original(self, *args, **kwargs)

    patched_init._haven_ws_overrides = overrides  # type: ignore[attr-defined]
    setattr(uvicorn.Config, "__init__", patched_init)  # noqa: B010 - mypy refuses method assignment
    logger.info("proxy WebSocket settings: %s", overrides)
    return []
