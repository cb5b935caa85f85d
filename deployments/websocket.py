"""`/ws`: authenticate, then one reader and one writer task per socket.

The reader parses and validates every frame and forwards it to the user's ConnectionActor; the
writer sends whatever that actor emits for this socket. Neither interprets the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from deployments.services import GatewayServices
from haven.auth import TokenClaims
from haven.errors import CloseCode, HavenError, InvalidMessage
from haven.protocol import Connection, ErrorEvent, parse_client_frame

logger = logging.getLogger(__name__)

router = APIRouter()


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    svc: GatewayServices = websocket.app.state.services
    if not svc.settings.enable_websocket:
        # Closing before accept refuses the handshake (HTTP 403).
        await websocket.close(code=CloseCode.POLICY_VIOLATION)
        return
    await websocket.accept()
    try:
        claims = svc.tokens.verify(websocket.query_params.get("token"))
    except HavenError as error:
        await _close_with(websocket, error)
        return
    await _serve(websocket, svc, claims)


async def _serve(websocket: WebSocket, svc: GatewayServices, claims: TokenClaims) -> None:
    user_id, socket_id = claims.user_id, uuid.uuid4().hex
    frames = svc.connections.attach(user_id, socket_id)
    try:
        # The first (empty) batch confirms this socket is registered with the user's actor, so
        # no event of a turn started from here can be missed.
        await anext(frames)
    except Exception:
        logger.exception("could not attach socket for user %s", user_id)
        await _close_with(websocket, HavenError(), CloseCode.SERVICE_RESTART)
        return
    await websocket.send_text(Connection().to_json())
    writer = asyncio.create_task(_write(websocket, frames))
    reader = asyncio.create_task(_read(websocket, svc, user_id, socket_id))
    try:
        done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        if writer in done and not reader.done():
            # The event stream ended from the actor's side (its host went away): let the client
            # reconnect rather than talk into a socket nobody answers.
            reader.cancel()
            await _close(websocket, CloseCode.SERVICE_RESTART)
        elif reader in done and not reader.cancelled() and reader.exception() is not None:
            logger.error("socket reader failed for user %s", user_id, exc_info=reader.exception())
            await _close(websocket, CloseCode.SERVICE_RESTART)
    finally:
        reader.cancel()
        with contextlib.suppress(Exception):
            await svc.connections.detach(user_id, socket_id)
        # Detaching ends the event stream; give the writer a moment to flush, then stop it.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer, timeout=5)
        writer.cancel()
        with contextlib.suppress(BaseException):
            await frames.aclose()  # type: ignore[attr-defined]


async def _read(websocket: WebSocket, svc: GatewayServices, user_id: str, socket_id: str) -> None:
    limit = svc.settings.max_message_chars
    while True:
        event = await websocket.receive()
        if event["type"] == "websocket.disconnect":
            return
        text = event.get("text")
        if text is None:
            error = ErrorEvent.from_error(
                InvalidMessage("unsupported_frame", "Binary frames are not supported here.")
            )
            await svc.connections.reject(user_id, socket_id, error)
            continue
        try:
            message = parse_client_frame(text, max_message_chars=limit)
        except InvalidMessage as invalid:
            await svc.connections.reject(user_id, socket_id, ErrorEvent.from_error(invalid))
            continue
        await svc.connections.receive(user_id, socket_id, message)


async def _write(websocket: WebSocket, frames: AsyncIterator[list[str]]) -> None:
    try:
        async for batch in frames:
            for frame in batch:
                await websocket.send_text(frame)
    except (WebSocketDisconnect, RuntimeError, OSError):
        # The client went away mid-send; the reader sees the disconnect and cleans up.
        return
    except Exception:
        # The user's host went away; the caller closes the socket with a retryable code.
        logger.warning("event stream of a socket ended with an error", exc_info=True)


async def _close_with(websocket: WebSocket, error: HavenError, code: int | None = None) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_text(ErrorEvent.from_error(error).to_json())
    await _close(websocket, code or error.close_code or CloseCode.INTERNAL_ERROR)


async def _close(websocket: WebSocket, code: int) -> None:
    if websocket.application_state != WebSocketState.DISCONNECTED:
        with contextlib.suppress(Exception):
            await websocket.close(code=code)
