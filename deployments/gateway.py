"""The Gateway: Haven's FastAPI ingress on Ray Serve (`/ws`, REST, health)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, WebSocket
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.websockets import WebSocketState

from actors.pool import RayConnections
from deployments import counsellor, http_errors, privacy, rest, stopping, users, web, websocket
from deployments.services import GatewayServices
from haven import gc_policy, loop_probe
from haven.auth import TokenService, signing_secret
from haven.errors import CloseCode
from haven.logging_context import send_to_serve_log
from haven.settings import Settings
from haven.storage import retention
from haven.storage.master_key import master_keys
from haven.storage.store import Store

logger = logging.getLogger(__name__)

# How long a stop waits for the sockets' close frames to be written.
DRAIN_WAIT_S = 5.0
StopWatch = Callable[[Callable[[], Awaitable[None]]], Coroutine[Any, Any, None]]


async def drain(services: GatewayServices, wait_s: float = DRAIN_WAIT_S) -> None:
    """Closes this replica's sockets with the retryable "service restart" code, so clients
    reconnect to another replica and resume, instead of seeing the connection drop.

    A socket's close goes after the frames already queued for it (its writer sends it), and
    this waits up to `wait_s` for the sockets to finish, so the replica has no open requests
    left when Serve stops it."""
    sockets = list(services.open_sockets)
    if sockets:
        logger.info("closing %d sockets before shutdown", len(sockets))
    closes = []
    for ws in sockets:
        outbox = websocket.outbox_of(ws)
        if outbox is not None:
            outbox.end(CloseCode.SERVICE_RESTART)
        else:
            closes.append(_close_quietly(ws, CloseCode.SERVICE_RESTART))
    await asyncio.gather(*closes, return_exceptions=True)
    deadline = asyncio.get_running_loop().time() + wait_s
    while services.open_sockets & set(sockets):
        if asyncio.get_running_loop().time() >= deadline:
            logger.info("%d sockets still closing at shutdown", len(services.open_sockets))
            return
        await asyncio.sleep(0.05)


async def _close_quietly(websocket: WebSocket, code: int) -> None:
    if websocket.application_state != WebSocketState.DISCONNECTED:
        await websocket.close(code=code, reason="service restart")


async def forget_expired(services: GatewayServices, deleted: list[retention.Deleted]) -> None:
    """What retention deleted leaves memory too (`GatewayServices.forget_deleted`)."""
    for session in deleted:
        await services.forget_deleted(session.user_id, session.session_id)


def create_app(services: GatewayServices, watch_stop: StopWatch | None = None) -> FastAPI:
    """The Gateway's app. `watch_stop(on_stop)` returns once the service is stopping, having
    run `on_stop` (the Serve replica passes `deployments.stopping.watch_for_stop`)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loop_probe.start()
        watcher = asyncio.create_task(watch_stop(lambda: drain(services))) if watch_stop else None
        days = services.settings.retention_days
        expiry = (
            asyncio.create_task(
                retention.run_periodically(
                    services.store.engine,
                    days,
                    on_deleted=functools.partial(forget_expired, services),
                )
            )
            if days
            else None
        )
        yield
        if watcher is not None:
            watcher.cancel()
        if expiry is not None:
            expiry.cancel()
        await drain(services)
        # What the closed sockets started (in-process hosts) still writes to the store.
        await services.connections.settle()
        # Database connections belong to the loop serving the app; release them with it.
        await services.store.close()

    app = FastAPI(
        title="Haven",
        summary="Real-time backend for a mental-health support chat.",
        version="0.1.0",
        openapi_tags=rest.OPENAPI_TAGS
        + users.OPENAPI_TAGS
        + counsellor.OPENAPI_TAGS
        + privacy.OPENAPI_TAGS,
        lifespan=lifespan,
    )
    app.state.services = services
    # Until the models first answer, /readyz says "starting" rather than "unavailable".
    app.state.was_ready = False
    app.include_router(rest.router)
    app.include_router(users.router)
    app.include_router(privacy.router)
    app.include_router(counsellor.router)
    app.include_router(websocket.router)
    app.include_router(web.router)

    # Read per request: `haven.openapi` builds the app without services to print its schema.
    http_errors.install(app, body_limit=lambda: services.settings.max_request_body_bytes)
    return app


@serve.deployment(
    # Each open WebSocket holds one slot for its whole life.
    max_ongoing_requests=10_000,
    ray_actor_options={"num_cpus": 0.25},
)
@serve.ingress()
class Gateway:
    def __init__(
        self, settings: Settings, classifier: DeploymentHandle, generator: DeploymentHandle
    ) -> None:
        send_to_serve_log()
        self._settings = settings
        self._classifier = classifier
        self._generator = generator
        context = serve.get_replica_context()
        # Hosts ask the Gateway (any replica) to create a missing host, so no host owns another.
        gateway = serve.get_deployment_handle(context.deployment, context.app_name)
        self._connections = RayConnections(
            settings, classifier, generator, name_prefix=context.app_name, gateway=gateway
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        settings = self._settings
        services = GatewayServices(
            settings=settings,
            store=Store.from_url(settings.resolved_database_url, master_keys(settings)),
            tokens=TokenService(signing_secret(settings), settings.access_token_ttl_s),
            connections=self._connections,
            readiness=self._ready,
            forget_session=self._forget_session,
        )
        app_name = serve.get_replica_context().app_name
        # Only a stop requested after this replica started concerns it.
        watch = functools.partial(stopping.watch_for_stop, app_name, time.time())
        app = create_app(services, watch_stop=watch)
        # The app and its clients are built: what exists now lives as long as the replica.
        gc_policy.settle()
        return app

    async def ensure_host(self, index: int) -> None:
        """Creates host `index` if it does not exist (asked by a host that needs it)."""
        await self._connections.ensure(index)

    async def _forget_session(self, session_id: str) -> None:
        # One replica hears this; the others drop the state once it has been idle for
        # `prefix_cache_idle_s`. The deletion itself has already happened and stands.
        try:
            await self._generator.forget.remote(session_id)
        except Exception:
            logger.warning("the language model could not drop a deleted session's state")

    async def _ready(self) -> bool:
        classifier_ok, generator_ok = await asyncio.gather(
            self._classifier.ready.remote(), self._generator.ready.remote()
        )
        await self._connections.ready()
        return bool(classifier_ok and generator_ok)
