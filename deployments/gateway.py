"""The Gateway: Haven's FastAPI ingress on Ray Serve (`/ws`, REST, health)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.websockets import WebSocketState

from actors.pool import RayConnections
from deployments import http_errors, rest, web, websocket
from deployments.services import GatewayServices
from haven.auth import TokenService, signing_secret
from haven.errors import CloseCode
from haven.logging_context import send_to_serve_log
from haven.settings import Settings
from haven.storage.store import Store

logger = logging.getLogger(__name__)


async def drain(services: GatewayServices) -> None:
    """Closes this replica's sockets with the retryable "service restart" code, so clients
    reconnect to another replica and resume, instead of seeing the connection drop."""
    sockets = list(services.open_sockets)
    if sockets:
        logger.info("closing %d sockets before shutdown", len(sockets))
    await asyncio.gather(
        *(_close_quietly(ws, CloseCode.SERVICE_RESTART) for ws in sockets),
        return_exceptions=True,
    )


async def _close_quietly(websocket: WebSocket, code: int) -> None:
    if websocket.application_state != WebSocketState.DISCONNECTED:
        await websocket.close(code=code)


def create_app(services: GatewayServices) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await drain(services)
        # Database connections belong to the loop serving the app; release them with it.
        await services.store.close()

    app = FastAPI(
        title="Haven",
        summary="Real-time backend for a mental-health support chat.",
        version="0.1.0",
        openapi_tags=rest.OPENAPI_TAGS,
        lifespan=lifespan,
    )
    app.state.services = services
    # Until the models first answer, /readyz says "starting" rather than "unavailable".
    app.state.was_ready = False
    app.include_router(rest.router)
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
        app_name = serve.get_replica_context().app_name
        self._connections = RayConnections(settings, classifier, generator, name_prefix=app_name)

    def __serve_build_asgi_app__(self) -> FastAPI:
        settings = self._settings
        services = GatewayServices(
            settings=settings,
            store=Store.from_url(settings.resolved_database_url),
            tokens=TokenService(signing_secret(settings), settings.access_token_ttl_s),
            connections=self._connections,
            readiness=self._ready,
        )
        return create_app(services)

    async def _ready(self) -> bool:
        classifier_ok, generator_ok = await asyncio.gather(
            self._classifier.ready.remote(), self._generator.ready.remote()
        )
        await self._connections.ready()
        return bool(classifier_ok and generator_ok)
