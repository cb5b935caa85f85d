"""REST: accounts, sessions and their stored messages, health.

Every route documents its answers for OpenAPI (`/docs`, docs/openapi.json): a typed body for
success, and each typed error it can raise (`rest_docs.error_responses`)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request, Response, status
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from deployments.rest_docs import BEARER_DESCRIPTION, error_responses, validation_responses
from deployments.services import GatewayServices
from haven.accounts import Credentials, Registration
from haven.auth import TokenClaims, hash_password, verify_password
from haven.crisis_resources import SUPPORTED_LOCALES
from haven.errors import (
    InvalidCredentials,
    InvalidToken,
    LoggedOut,
    RequestTooLarge,
    SessionNotFound,
    TokenExpired,
    TooManyLoginAttempts,
    TooManyRegistrations,
    UsernameTaken,
)
from haven.presence import counsellor_refs
from haven.protocol import CounsellorRef
from haven.throttle import AuthThrottle

logger = logging.getLogger(__name__)


def _operation_id(route: APIRoute) -> str:
    return route.name


router = APIRouter(generate_unique_id_function=_operation_id)
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    bearerFormat="JWT",
    description=BEARER_DESCRIPTION,
)

# The tags of the routes below, described for OpenAPI (`create_app` passes them on).
OPENAPI_TAGS: list[dict[str, Any]] = [
    {
        "name": "auth",
        "description": "Accounts and access tokens. A token from `POST /auth/login` goes in "
        "`Authorization: Bearer` for REST and opens the WebSocket (`/ws?token=`; see "
        "docs/asyncapi.yaml).",
    },
    {
        "name": "sessions",
        "description": "A user's conversations and their stored messages. The messages "
        "themselves are sent over the WebSocket.",
    },
    {
        "name": "health",
        "description": "Liveness and readiness, for load balancers and orchestrators.",
    },
]

# What each kind of route can answer besides success.
_AUTH_ERRORS = error_responses(InvalidToken(), TokenExpired(), LoggedOut())
_SESSION_ERRORS = (
    error_responses(InvalidToken(), TokenExpired(), LoggedOut(), SessionNotFound())
    | validation_responses()
)


class UserOut(BaseModel):
    id: str = Field(description="The account's id.")
    username: str = Field(description="The name to log in with.")
    locale: str | None = Field(
        default=None,
        description=f"The region for crisis resources (one of {', '.join(SUPPORTED_LOCALES)}), "
        "when one was given; otherwise the deployment's default applies.",
    )


class TokenOut(BaseModel):
    access_token: str = Field(description="A signed JWT: REST's bearer token and the socket's.")
    token_type: str = Field(default="bearer", description="Always `bearer`.")
    expires_in: int = Field(description="Seconds until the token expires.")


class SessionOut(BaseModel):
    id: str = Field(description="The session's id: `session_id` in WebSocket frames.")
    created_at: datetime = Field(description="When the session was created (UTC).")


class MessageOut(BaseModel):
    id: str = Field(description="The stored message's id (`message_id` on the WebSocket).")
    role: str = Field(
        description="`user` (the person), `assistant` (a reply) or `counsellor` (a counsellor "
        "who joined the conversation)."
    )
    text: str = Field(description="The message; for a reply, its final text.")
    intent: str | None = Field(
        description="A reply's intent, e.g. `validate` or `crisis_support`; null for the person."
    )
    risk_level: str | None = Field(
        description="The assessed risk of the person's message, or for a reply of the message "
        "it answers: `none`, `low`, `medium`, `high` or `critical`; null when not assessed."
    )
    created_at: datetime = Field(description="When it was stored (UTC).")
    status: str | None = Field(
        default=None,
        description="Replies only: `complete`, `cancelled` (stopped by the client) or "
        "`replaced` (a safe reply stood in for the generated one).",
    )
    counsellor: CounsellorRef | None = Field(
        default=None,
        description="Counsellor messages only: who wrote it, as the person saw it live "
        "(`counsellor_message.message.counsellor`); null for every other role.",
    )


class HealthOut(BaseModel):
    status: Literal["ok"] = Field(description="Always `ok` while the process serves requests.")


class ReadinessOut(BaseModel):
    status: Literal["ready", "starting", "unavailable"] = Field(
        description="`ready` when the classifier, the language model and the connection hosts "
        "answer; until they first do, `starting` (503); after that, while they do not, "
        "`unavailable` (503)."
    )


_REGISTRATION_EXAMPLES: dict[str, Any] = {
    "account": {
        "summary": "A new account",
        "value": {"username": "ana", "password": "a long passphrase", "locale": "GB"},
    }
}
_LOGIN_EXAMPLES: dict[str, Any] = {
    "login": {"summary": "Log in", "value": {"username": "ana", "password": "a long passphrase"}}
}


def client_address(request: Request) -> str:
    """The address the request came from, as the proxy saw it (Serve's uvicorn trusts
    `X-Forwarded-For` only from 127.0.0.1, so a client cannot choose its own)."""
    return request.client.host if request.client else "unknown"


def _throttle(svc: GatewayServices) -> AuthThrottle:
    return AuthThrottle(svc.store.throttle, svc.settings)


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


@router.post(
    "/auth/register",
    status_code=status.HTTP_201_CREATED,
    tags=["auth"],
    summary="Create an account",
    response_description="The new account.",
    responses=error_responses(UsernameTaken(), TooManyRegistrations(), RequestTooLarge())
    | validation_responses(),
)
async def register(
    body: Annotated[Registration, Body(openapi_examples=_REGISTRATION_EXAMPLES)],
    svc: Services,
    request: Request,
) -> UserOut:
    """A username (3 to 32 of `A-Z a-z 0-9 _ . -`, unique whatever the case), a password of at
    least 10 characters that is not a common one nor contains the username, and optionally a
    locale for crisis resources. Does not log in: call `POST /auth/login` next.

    One client address may create 20 accounts an hour (the default); past that, 429
    `too_many_registrations` with `Retry-After`."""
    # Counted before the password is hashed: hashing is the expensive part.
    await _throttle(svc).register(client_address(request))
    password_hash = await asyncio.to_thread(hash_password, body.password)
    user = await svc.store.create_user(body.username, password_hash, locale=body.locale)
    return UserOut(id=user.id, username=user.username, locale=user.locale)


@router.post(
    "/auth/login",
    tags=["auth"],
    summary="Log in: get an access token",
    response_description="A bearer token for REST and the WebSocket.",
    responses=error_responses(InvalidCredentials(), TooManyLoginAttempts(), RequestTooLarge())
    | validation_responses(),
)
async def login(
    body: Annotated[Credentials, Body(openapi_examples=_LOGIN_EXAMPLES)],
    svc: Services,
    request: Request,
) -> TokenOut:
    """A wrong password and an unknown username get the same 401 `invalid_credentials`, in the
    same time.

    After 5 failures for one username (or 20 from one client address; the defaults) logins are
    refused with 429 `too_many_login_attempts` and `Retry-After`: 30 s, doubling with each
    further failure, at most 15 min, the right password included. A successful login clears
    the username's count."""
    throttle, address = _throttle(svc), client_address(request)
    await throttle.check_login(body.username, address)
    user = await svc.store.get_user_by_username(body.username)
    stored_hash = user.password_hash if user else None
    # verify_password(None, ...) still hashes, so an unknown name answers in the same time.
    if not await asyncio.to_thread(verify_password, stored_hash, body.password) or user is None:
        await throttle.login_failed(body.username, address)
        raise InvalidCredentials()
    await throttle.login_succeeded(body.username)
    token, expires_in = svc.tokens.issue(user.id, user.role)
    return TokenOut(access_token=token, expires_in=expires_in)


@router.post(
    "/auth/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["auth"],
    summary="Log out: revoke this token",
    response_description="Revoked.",
    responses=_AUTH_ERRORS,
)
async def logout(user: User, svc: Services) -> Response:
    """Revokes this token and closes every socket opened with it (`error` `logged_out`, close
    4004). Other tokens of the user stay valid."""
    if user.jti:
        expires_at = datetime.fromtimestamp(user.expires_at, UTC)
        await svc.store.revocations.revoke(user.jti, user.user_id, expires_at)
        try:
            await svc.connections.revoke(user.user_id, user.jti)
        except Exception:
            # The revocation is stored; a socket missed here is refused at its next check.
            logger.warning("could not close the sockets of a revoked token", exc_info=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/sessions",
    status_code=status.HTTP_201_CREATED,
    tags=["sessions"],
    summary="Start a session",
    response_description="The new, empty session.",
    responses=_AUTH_ERRORS,
)
async def create_session(user: User, svc: Services) -> SessionOut:
    """A new conversation; send messages to it over the WebSocket with its `id`."""
    record = await svc.store.create_session(user.user_id)
    return SessionOut(id=record.id, created_at=record.created_at)


@router.get(
    "/sessions",
    tags=["sessions"],
    summary="List your sessions",
    response_description="The user's sessions.",
    responses=_AUTH_ERRORS,
)
async def list_sessions(user: User, svc: Services) -> list[SessionOut]:
    """Every session of the token's user."""
    records = await svc.store.list_sessions(user.user_id)
    return [SessionOut(id=r.id, created_at=r.created_at) for r in records]


@router.get(
    "/sessions/{session_id}/messages",
    tags=["sessions"],
    summary="Read a session's messages",
    response_description="The stored messages, oldest first.",
    responses=_SESSION_ERRORS,
)
async def list_messages(session_id: str, user: User, svc: Services) -> list[MessageOut]:
    """The person's messages and the finished replies, as stored; a reply still being written
    is not among them. Use it to reload a conversation, e.g. after `resumed.recovered` is
    false. Another user's session answers 404, like an unknown one."""
    records = await svc.store.list_messages(user.user_id, session_id)
    names = await counsellor_refs(svc.store, (r.author_id for r in records))
    return [
        MessageOut(
            id=r.id,
            role=r.role,
            text=r.text,
            intent=r.intent,
            risk_level=r.risk_level,
            created_at=r.created_at,
            status=r.status,
            counsellor=names.get(r.author_id) if r.author_id else None,
        )
        for r in records
    ]


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["sessions"],
    summary="Delete a session",
    response_description="Deleted, with its messages.",
    responses=_SESSION_ERRORS,
)
async def delete_session(session_id: str, user: User, svc: Services) -> Response:
    """Deletes the session, its messages and its events kept for `resume`. A reply being
    written for it ends with `error` `session_not_found` on the WebSocket."""
    await svc.store.delete_session(user.user_id, session_id)
    await svc.forget_deleted(user.user_id, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/healthz",
    tags=["health"],
    summary="Liveness",
    response_description="The process serves requests.",
)
async def healthz() -> HealthOut:
    """Answers as long as the process serves HTTP; it checks nothing else. For an
    orchestrator: restart the process only when this fails. The Serve proxy answers it itself
    while the Gateway starts."""
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    tags=["health"],
    summary="Readiness",
    response_description="Ready to serve turns.",
    responses={503: {"model": ReadinessOut, "description": "Not ready yet, or not any more."}},
)
async def readyz(request: Request, svc: Services, response: Response) -> ReadinessOut:
    """Whether the safety classifier, the language model and the connection hosts answer
    (within 10 s). Any Gateway replica answers it, so it tells about the application, not a
    node: wait for it at start-up and alert on it; a load balancer checks each node with
    Serve's `/-/healthz`. The Serve proxy answers 503 `starting` itself until the Gateway is
    deployed."""
    try:
        ready = await asyncio.wait_for(svc.readiness(), timeout=10)
    except Exception as error:
        # Expected while the models load (one line, no traceback); a failure after they
        # answered once is worth a warning with its cause.
        if request.app.state.was_ready:
            logger.warning("readiness check failed", exc_info=True)
        else:
            logger.info("not ready yet: %s", type(error).__name__)
        ready = False
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return ReadinessOut(status="unavailable" if request.app.state.was_ready else "starting")
    request.app.state.was_ready = True
    return ReadinessOut(status="ready")
