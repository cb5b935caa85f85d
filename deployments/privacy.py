"""REST: a person's own data, all of it: erase it (`DELETE /me`) or take a copy of it
(`GET /me/export`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response, status
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
    TooManyLoginAttempts,
    WrongPassword,
)
from haven.throttle import AuthThrottle

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
