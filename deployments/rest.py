"""REST: accounts, sessions and their stored messages, health."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from deployments.services import GatewayServices
from haven.accounts import Credentials, Registration
from haven.auth import TokenClaims, hash_password, verify_password
from haven.errors import InvalidToken

logger = logging.getLogger(__name__)

router = APIRouter()
_bearer = HTTPBearer(auto_error=False)


class UserOut(BaseModel):
    id: str
    username: str
    locale: str | None = None


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class SessionOut(BaseModel):
    id: str
    created_at: datetime


class MessageOut(BaseModel):
    id: str
    role: str
    text: str
    intent: str | None
    risk_level: str | None
    created_at: datetime
    # Assistant replies: "complete", "cancelled" or "replaced".
    status: str | None = None


def services(request: Request) -> GatewayServices:
    svc: GatewayServices = request.app.state.services
    return svc


Services = Annotated[GatewayServices, Depends(services)]


async def current_user(
    svc: Services,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenClaims:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidToken()
    return await svc.authenticate(credentials.credentials)


User = Annotated[TokenClaims, Depends(current_user)]


@router.post("/auth/register", status_code=status.HTTP_201_CREATED, tags=["auth"])
async def register(body: Registration, svc: Services) -> UserOut:
    password_hash = await asyncio.to_thread(hash_password, body.password)
    user = await svc.store.create_user(body.username, password_hash, locale=body.locale)
    return UserOut(id=user.id, username=user.username, locale=user.locale)


@router.post("/auth/login", tags=["auth"])
async def login(body: Credentials, svc: Services) -> TokenOut:
    user = await svc.store.get_user_by_username(body.username)
    stored_hash = user.password_hash if user else None
    # verify_password(None, ...) still hashes, so an unknown name answers in the same time.
    if not await asyncio.to_thread(verify_password, stored_hash, body.password) or user is None:
        raise InvalidToken(message="Wrong username or password.")
    token, expires_in = svc.tokens.issue(user.id)
    return TokenOut(access_token=token, expires_in=expires_in)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"])
async def logout(user: User, svc: Services) -> Response:
    """Revokes this token and closes every socket opened with it."""
    if user.jti:
        expires_at = datetime.fromtimestamp(user.expires_at, UTC)
        await svc.store.revocations.revoke(user.jti, user.user_id, expires_at)
        try:
            await svc.connections.revoke(user.user_id, user.jti)
        except Exception:
            # The revocation is stored; a socket missed here is refused at its next check.
            logger.warning("could not close the sockets of a revoked token", exc_info=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/sessions", status_code=status.HTTP_201_CREATED, tags=["sessions"])
async def create_session(user: User, svc: Services) -> SessionOut:
    record = await svc.store.create_session(user.user_id)
    return SessionOut(id=record.id, created_at=record.created_at)


@router.get("/sessions", tags=["sessions"])
async def list_sessions(user: User, svc: Services) -> list[SessionOut]:
    records = await svc.store.list_sessions(user.user_id)
    return [SessionOut(id=r.id, created_at=r.created_at) for r in records]


@router.get("/sessions/{session_id}/messages", tags=["sessions"])
async def list_messages(session_id: str, user: User, svc: Services) -> list[MessageOut]:
    records = await svc.store.list_messages(user.user_id, session_id)
    return [
        MessageOut(
            id=r.id,
            role=r.role,
            text=r.text,
            intent=r.intent,
            risk_level=r.risk_level,
            created_at=r.created_at,
            status=r.status,
        )
        for r in records
    ]


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["sessions"])
async def delete_session(session_id: str, user: User, svc: Services) -> Response:
    await svc.store.delete_session(user.user_id, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["health"])
async def readyz(svc: Services, response: Response) -> dict[str, str]:
    try:
        ready = await asyncio.wait_for(svc.readiness(), timeout=10)
    except Exception:
        logger.warning("readiness check failed", exc_info=True)
        ready = False
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "unavailable"}
    return {"status": "ready"}
