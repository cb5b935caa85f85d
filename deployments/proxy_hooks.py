"""WebSocket limits for the Serve proxy's own uvicorn server (and health answers before start).

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
- `HAVEN_OUTBOUND_QUEUE_BYTES` (default 1 MiB): what the proxy may hold for one client that
  does not read. Serve hands a replica's frames to the proxy without backpressure, so a client
  that stops reading would otherwise grow the proxy's write buffer without bound; past the limit
  the socket is closed with 4009 (slow consumer) and dropped after a short grace.

This relies on Serve's and uvicorn's internals (the callback runs first, Serve passes no `ws_*`
arguments, uvicorn's websockets-sansio protocol class): `tests/integration/test_connections.py`
(through a real Serve proxy) and `tests/server/test_proxy_limits.py` (uvicorn alone) fail if an
upgrade changes that.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
CALLBACK_PATH = "deployments.proxy_hooks:limit_proxy_websockets"
DEFAULTS = {
    "HAVEN_MAX_FRAME_BYTES": "65536",
    "HAVEN_WS_PER_MESSAGE_DEFLATE": "true",
    "HAVEN_WS_PING_INTERVAL_S": "20",
    "HAVEN_WS_PING_TIMEOUT_S": "20",
    "HAVEN_OUTBOUND_QUEUE_BYTES": str(1 << 20),
}
# A client told it is too slow gets this long to read its close frame before the socket goes.
SLOW_CONSUMER_GRACE_S = 5.0

logger = logging.getLogger(__name__)


def proxy_websocket_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """uvicorn `Config` keyword arguments for the WebSocket settings in `env` (or defaults)."""
    values = {name: env.get(name, default) for name, default in DEFAULTS.items()}
    overrides: dict[str, Any] = {
        # The implementation whose writes `bound_outbound` patches (uvicorn's "auto" today).
        "ws": "websockets-sansio",
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
    """Target of `RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`; its one middleware answers
    `/readyz` and `/healthz` before the Gateway can (`deployments.proxy_health`)."""
    import uvicorn
    from starlette.middleware import Middleware

    from deployments.proxy_health import HealthBeforeStart

    middlewares = [Middleware(HealthBeforeStart)]
    overrides = proxy_websocket_overrides(os.environ)
    outbound = "HAVEN_OUTBOUND_QUEUE_BYTES"
    bound_outbound(int(os.environ.get(outbound, DEFAULTS[outbound])))
    original = uvicorn.Config.__init__
    if getattr(original, "_haven_ws_overrides", None) is not None:
        return middlewares

    def patched_init(self: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        for key, value in overrides.items():
            # An argument Serve passes explicitly wins over ours.
            kwargs.setdefault(key, value)
        original(self, *args, **kwargs)

    patched_init._haven_ws_overrides = overrides  # type: ignore[attr-defined]
    setattr(uvicorn.Config, "__init__", patched_init)  # noqa: B010 - mypy refuses method assignment
    logger.info("proxy WebSocket settings: %s", overrides)
    return middlewares


def bound_outbound(limit: int, grace_s: float = SLOW_CONSUMER_GRACE_S) -> None:
    """Closes a socket with 4009 once more than `limit` bytes wait to be written to it.

    Writes never wait for the client: the transport's high-water mark is raised above the
    limit, so one slow reader cannot stall the proxy loop that serves the user's other frames.
    """
    from uvicorn.protocols.websockets.websockets_sansio_impl import (
        WebSocketsSansIOProtocol as Protocol,
    )

    from haven import gc_policy, loop_probe
    from haven.errors import SlowConsumer

    if getattr(Protocol, "_haven_outbound_limit", None) is not None:
        return
    code = SlowConsumer.close_code or 1008
    ray = sys.modules.get("ray")
    in_ray_worker = ray is not None and bool(ray.is_initialized())
    original_made = Protocol.connection_made
    original_send = Protocol.send

    def connection_made(self: Protocol, transport: Any) -> None:
        loop_probe.start()
        if in_ray_worker:
            # At the first connection, not in the callback: Serve sets the proxy's own GC
            # threshold after calling it. (A test's uvicorn keeps its process's settings.)
            gc_policy.settle()
        original_made(self, transport)
        # Frames are far smaller than the limit, so the buffer stays below this mark.
        transport.set_write_buffer_limits(high=2 * limit + (1 << 16))
        self.app = _restart_close_on_return(self.app, self)

    async def send(self: Protocol, message: Any) -> None:
        if message["type"] == "websocket.send" and self.handshake_complete:
            if self.close_sent:
                return  # the socket is closing for being slow; later frames have nowhere to go
            if self.transport.get_write_buffer_size() > limit:
                logger.info("closing a WebSocket whose client stopped reading")
                await original_send(
                    self, {"type": "websocket.close", "code": code, "reason": "slow consumer"}
                )
                self.loop.call_later(grace_s, self.transport.abort)
                return
        await original_send(self, message)

    setattr(Protocol, "connection_made", connection_made)  # noqa: B010
    setattr(Protocol, "send", send)  # noqa: B010
    setattr(Protocol, "_haven_outbound_limit", limit)  # noqa: B010


def _restart_close_on_return(app: Any, protocol: Any) -> Any:
    """A socket whose replica went away (it was stopped, crashed or redeployed) ends without a
    close frame from the app; the client gets 1012 (retryable: reconnect and resume) instead
    of a dropped connection."""
    from haven.errors import CloseCode

    async def run(scope: Any, receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        finally:
            still_open = (
                protocol.handshake_complete
                and not protocol.close_sent
                and not protocol.disconnected
                and protocol.initial_response is None
            )
            if still_open:
                message = {"type": "websocket.close", "code": int(CloseCode.SERVICE_RESTART)}
                try:
                    await send({**message, "reason": "service restart"})
                except Exception:  # the client left meanwhile
                    logger.debug("could not send the restart close", exc_info=True)

    return run
