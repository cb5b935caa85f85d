"""REST: a person's own data, all of it: erase it (`DELETE /me`) or take a copy of it
(`GET /me/export`)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response, status
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute

from deployments.rest import Services, User, client_address
from deployments.rest_docs import error_responses, validation_responses
from haven.accounts import PasswordConfirmation
from haven.auth import verify_password
from haven.errors import (
    InvalidToken,
    LoggedOut,
    RequestTooLarge,
    TokenExpired,
    TooManyExports,
    TooManyLoginAttempts,
    WrongPassword,
)
from haven.storage.export import FORMAT
from haven.storage.throttle import throttle_key
from haven.throttle import AuthThrottle

EXPORT_WINDOW = timedelta(hours=1)

logger = logging.getLogger(__name__)


def _operation_id(route: APIRoute) -> str:
    return route.name


router = APIRouter(generate_unique_id_function=_operation_id)

OPENAPI_TAGS: list[dict[str, Any]] = [
    {
        "name": "privacy",
        "description": "Everything Haven holds about you: a copy of it, or all of it erased. "
        'See docs/security.md, "Health data".',
    }
]

_ERASE_EXAMPLES: dict[str, Any] = {
    "erase": {"summary": "Erase my account", "value": {"password": "a long passphrase"}}
}


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["privacy"],
    summary="Erase your account and everything it holds",
    response_description="Erased.",
    responses=error_responses(
        InvalidToken(),
        TokenExpired(),
        LoggedOut(),
        WrongPassword(),
        TooManyLoginAttempts(),
        RequestTooLarge(),
    )
    | validation_responses(),
)
async def erase_me(
    body: Annotated[PasswordConfirmation, Body(openapi_examples=_ERASE_EXAMPLES)],
    user: User,
    svc: Services,
    request: Request,
) -> Response:
    """Deletes the account, its sessions, messages, event log and revoked tokens, and destroys
    its data key, so nothing of it can be read again. It cannot be undone, so the password is
    asked for again: a wrong one answers 403 `wrong_password` and counts as a failed login
    (after 5, 429 `too_many_login_attempts`). Every open socket of the account closes with
    `account_deleted` (4010); the account's tokens stop working, and logging in with its name
    answers as for a name that never existed. The escalation audit keeps its counts for the
    operator's report, without any link to the account."""
    account = await svc.store.get_user(user.user_id)
    if account is None:
        raise InvalidToken()
    throttle, address = AuthThrottle(svc.store.throttle, svc.settings), client_address(request)
    await throttle.check_login(account.username, address)
    if not await asyncio.to_thread(verify_password, account.password_hash, body.password):
        await throttle.login_failed(account.username, address)
        raise WrongPassword()
    erased = await svc.store.erasure.erase(account.id)
    if erased is None:  # erased meanwhile by another request
        raise InvalidToken()
    try:
        await svc.connections.erase(account.id)
    except Exception:
        # The data is gone; a socket missed here can read and write nothing any more.
        logger.warning("could not close the sockets of an erased account", exc_info=True)
    if svc.forget_session is not None:
        for session_id in erased.session_ids:
            await svc.forget_session(session_id)
    logger.info("erased an account and its %d sessions", len(erased.session_ids))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _count_export(svc: Services, user_id: str) -> None:
    now, limit = datetime.now(UTC), svc.settings.exports_per_user_per_hour

    def lock_for(count: int, first_at: datetime) -> datetime | None:
        return first_at + EXPORT_WINDOW if count > limit else None

    counter = await svc.store.throttle.count(
        throttle_key("export-user", user_id), now, now - EXPORT_WINDOW, lock_for, fixed_window=True
    )
    if counter.locked_until is not None:
        raise TooManyExports(retry_after=(counter.locked_until - now).total_seconds())


_EXPORT_BODY: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"schema": {"type": "object"}}}}
}


@router.get(
    "/me/export",
    tags=["privacy"],
    summary="Download everything Haven holds about you",
    response_description=f"One JSON document, format `{FORMAT}` (schema: docs/export.schema.json).",
    response_class=StreamingResponse,
    responses=_EXPORT_BODY
    | error_responses(InvalidToken(), TokenExpired(), LoggedOut(), TooManyExports()),
)
async def export_me(user: User, svc: Services) -> StreamingResponse:
    """Your account (without the password hash), every session with all its messages in order
    (role, text, time, intent, risk level, status), and the escalations about you (level,
    time, action), as described by docs/export.schema.json. The document is streamed, so a
    long history starts arriving at once. 5 exports an hour (the default); past that, 429
    `too_many_exports` with `Retry-After`."""
    await _count_export(svc, user.user_id)
    if not await svc.store.export.account_exists(user.user_id):
        raise InvalidToken()
    return StreamingResponse(
        svc.store.export.export(user.user_id),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="haven-export.json"'},
    )
