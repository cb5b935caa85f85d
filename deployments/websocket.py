"""`/ws`: check the origin, authenticate, then one reader task per socket, and a writer task
while the socket has something to write.

The reader checks each frame's size, decodes and validates it, and forwards it to the user's
ConnectionActor; what that actor emits for this socket goes into a bounded outbox, whose writer
sends it. Neither interprets the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketState

from actors.channel import Close, Outbound
from actors.connection import SocketTicket
from actors.link import Delivery
from deployments.outbox import Outbox
from deployments.services import GatewayServices
from haven import metrics
from haven.auth import TokenClaims
from haven.codec import (
    SUBPROTOCOL_MSGPACK,
    Codec,
    decode_frame,
    encode_json_frame,
    exceeds_frame_limit,
    negotiate,
)
from haven.errors import CloseCode, FrameTooLarge, HavenError, InvalidMessage, InvalidToken
from haven.protocol import Auth, Connection, ErrorEvent

logger = logging.getLogger(__name__)

router = APIRouter()

# Where the first close of a socket is noted (code, side), for its metrics and its log line.
_CLOSE_KEY = "haven.close"
# The socket's outbox, in its scope while the socket is served.
_OUTBOX_KEY = "haven.outbox"
# Reasons sent with a close code, where a client may show them.
_CLOSE_REASONS = {CloseCode.SERVICE_RESTART: "service restart"}


def outbox_of(websocket: WebSocket) -> Outbox | None:
    outbox = websocket.scope.get(_OUTBOX_KEY)
    return outbox if isinstance(outbox, Outbox) else None


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    svc: GatewayServices = websocket.app.state.services
    if not svc.settings.enable_websocket or not _origin_allowed(websocket, svc):
        # Closing before accept refuses the handshake (HTTP 403): a page on another site
        # cannot open a socket with the person's credentials.
        await websocket.close(code=CloseCode.POLICY_VIOLATION)
        return
    codec, subprotocol = negotiate(list(websocket.scope.get("subprotocols", [])))
    await websocket.accept(subprotocol=subprotocol)
    connection_id = uuid.uuid4().hex
    metrics.socket_opened()
    try:
        try:
            claims = await _authenticate(websocket, svc, codec)
        except HavenError as error:
            # The reason only: what the client sent (a token) never goes into a log.
            logger.debug(
                "socket refused at authentication: %s",
                error.code,
                extra={"connection_id": connection_id},
            )
            await _close_with(websocket, codec, error)
            return
        svc.open_sockets.add(websocket)
        try:
            await _serve(websocket, svc, claims, codec, connection_id)
        finally:
            svc.open_sockets.discard(websocket)
    finally:
        # A socket that ended without any close frame is counted as 1006 (abnormal closure).
        code, by = websocket.scope.get(_CLOSE_KEY, (1006, "client"))
        metrics.socket_closed(code, by=by)
        logger.info(
            "socket closed: %s by %s",
            code,
            by,
            extra={"connection_id": connection_id, "close_code": code, "closed_by": by},
        )


def _note_close(websocket: WebSocket, code: int, by: metrics.ClosedBy) -> None:
    websocket.scope.setdefault(_CLOSE_KEY, (code, by))


def _origin_allowed(websocket: WebSocket, svc: GatewayServices) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser: cross-site hijacking needs one
    if origin in svc.settings.allowed_origins:
        return True
    host = websocket.headers.get("host", "")
    return bool(host) and urlsplit(origin).netloc.lower() == host.lower()


def _header_token(websocket: WebSocket) -> str | None:
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


async def _authenticate(websocket: WebSocket, svc: GatewayServices, codec: Codec) -> TokenClaims:
    token = websocket.query_params.get("token") or _header_token(websocket)
    if token is None:
        token = await _first_frame_token(websocket, svc, codec)
    return await svc.authenticate(token)


async def _first_frame_token(websocket: WebSocket, svc: GatewayServices, codec: Codec) -> str:
    """Without a token in the URL or a header, the first frame must be `auth`."""
    try:
        event = await asyncio.wait_for(websocket.receive(), timeout=svc.settings.auth_timeout_s)
    except TimeoutError:
        raise InvalidToken() from None
    if event["type"] == "websocket.disconnect":
        _note_close(websocket, event.get("code", 1005), "client")
        raise InvalidToken()
    data = event.get("text") if event.get("text") is not None else event.get("bytes")
    try:
        frame = decode_frame(data or b"", codec, max_message_chars=svc.settings.max_message_chars)
    except InvalidMessage:
        raise InvalidToken() from None
    if not isinstance(frame, Auth):
        raise InvalidToken()
    return frame.token


def _last_seq(websocket: WebSocket) -> int | None:
    value = websocket.query_params.get("last_seq")
    if value is None or not value.isdigit() or len(value) > 16:
        return None
    return int(value)


async def _serve(
    websocket: WebSocket,
    svc: GatewayServices,
    claims: TokenClaims,
    codec: Codec,
    connection_id: str,
) -> None:
    # The socket's id at the user's ConnectionActor is the one its log lines carry.
    user_id, socket_id = claims.user_id, connection_id
    log_fields = {"connection_id": connection_id}
    ticket = SocketTicket(
        jti=claims.jti or None,
        expires_at=float(claims.expires_at),
        last_seq=_last_seq(websocket),
        role=claims.role,
    )
    outbox = Outbox(svc.settings.outbound_queue_bytes, functools.partial(_write, websocket, codec))
    try:
        # The answer confirms this socket is registered with the user's actor, so no event of
        # a turn started from here can be missed (what comes meanwhile waits in the outbox);
        # or it holds the refusal.
        first = await svc.connections.open(
            user_id, socket_id, ticket, functools.partial(_deliver, outbox, log_fields)
        )
    except Exception:
        logger.exception("could not attach a socket", extra=log_fields)
        await _close_with(websocket, codec, HavenError(), CloseCode.SERVICE_RESTART)
        return
    refusal = next((item for item in first if isinstance(item, Close)), None)
    if refusal is not None:
        await _send_close(websocket, codec, refusal)
        return
    encoding = SUBPROTOCOL_MSGPACK if codec is Codec.MSGPACK else None
    await _send(websocket, codec, Connection(encoding=encoding).to_json())
    websocket.scope[_OUTBOX_KEY] = outbox  # a stopping Gateway ends the socket through it
    reader = asyncio.create_task(_read(websocket, svc, user_id, socket_id, codec))
    # Once the outbox has written a close order (or the client is gone), reading ends too.
    outbox.start(on_finished=reader.cancel)
    try:
        await asyncio.wait({reader})
        if not reader.cancelled() and reader.exception() is not None:
            logger.error("socket reader failed", exc_info=reader.exception(), extra=log_fields)
            outbox.put(Close(CloseCode.SERVICE_RESTART))
            await outbox.wait_finished(5)
    finally:
        reader.cancel()
        with contextlib.suppress(Exception):
            await svc.connections.detach(user_id, socket_id)
        # Detaching ends the event stream: give the writer a moment to flush, then stop.
        await outbox.wait_finished(5)
        outbox.abort()
        await _close(websocket, CloseCode.NORMAL)


def _deliver(outbox: Outbox, log_fields: dict[str, str], part: Delivery) -> None:
    """What the user's actor sends this socket: items, then None once its stream ends."""
    if isinstance(part, BaseException):
        # The user's host went away: the client should reconnect (and resume) elsewhere.
        logger.warning("event stream of a socket ended with an error: %r", part, extra=log_fields)
        outbox.end(CloseCode.SERVICE_RESTART)
    elif part is None:
        outbox.end(CloseCode.SERVICE_RESTART)
    else:
        for item in part:
            outbox.put(item)


async def _write(websocket: WebSocket, codec: Codec, item: Outbound) -> None:
    if isinstance(item, Close):
        await _send_close(websocket, codec, item)
    else:
        await _send(websocket, codec, item)


async def _read(
    websocket: WebSocket, svc: GatewayServices, user_id: str, socket_id: str, codec: Codec
) -> None:
    settings = svc.settings
    while True:
        event = await websocket.receive()
        if event["type"] == "websocket.disconnect":
            _note_close(websocket, event.get("code", 1005), "client")
            return
        data: str | bytes | None = event.get("text")
        if data is None:
            data = event.get("bytes") or b""
        # The proxy refuses larger frames itself (`deployments.proxy_hooks`); this holds
        # when it runs without that limit.
        if exceeds_frame_limit(data, settings.max_frame_bytes):
            await _close_with(websocket, codec, FrameTooLarge())
            return
        try:
            frame = decode_frame(data, codec, max_message_chars=settings.max_message_chars)
        except InvalidMessage as invalid:
            await svc.connections.reject(user_id, socket_id, invalid)
            continue
        if isinstance(frame, Auth):
            await _refresh(svc, user_id, socket_id, frame.token)
            continue
        await svc.connections.receive(user_id, socket_id, frame)


async def _refresh(svc: GatewayServices, user_id: str, socket_id: str, token: str) -> None:
    """A fresh token on an open socket: it must be valid and belong to the same person."""
    try:
        claims = await svc.authenticate(token)
        if claims.user_id != user_id:
            raise InvalidToken()
    except HavenError as error:
        await svc.connections.reject(user_id, socket_id, error)
        return
    await svc.connections.refresh(user_id, socket_id, claims.jti or None, float(claims.expires_at))


async def _send(websocket: WebSocket, codec: Codec, frame: str) -> None:
    data = encode_json_frame(frame, codec)
    if isinstance(data, bytes):
        await websocket.send_bytes(data)
    else:
        await websocket.send_text(data)


async def _send_close(websocket: WebSocket, codec: Codec, close: Close) -> None:
    if close.frame is not None:
        with contextlib.suppress(Exception):
            await _send(websocket, codec, close.frame)
    await _close(websocket, close.code)


async def _close_with(
    websocket: WebSocket, codec: Codec, error: HavenError, code: int | None = None
) -> None:
    with contextlib.suppress(Exception):
        await _send(websocket, codec, ErrorEvent.from_error(error).to_json())
    await _close(websocket, code or error.close_code or CloseCode.INTERNAL_ERROR)


async def _close(websocket: WebSocket, code: int) -> None:
    if websocket.application_state != WebSocketState.DISCONNECTED:
        if websocket.client_state != WebSocketState.DISCONNECTED:
            _note_close(websocket, code, "server")
        with contextlib.suppress(Exception):
            await websocket.close(code=code, reason=_CLOSE_REASONS.get(code))
