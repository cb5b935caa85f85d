"""How the REST API answers a failure: the one place an error becomes an HTTP response.

- A typed `HavenError` answers its status with `ErrorBody` (fixed text, stable code).
- A request that does not validate answers 422 with `ValidationErrorBody`: field names, error
  types and messages. What the person typed is echoed only for fields that are not secret, only
  when it is a short scalar, and cut to `MAX_ECHO_CHARS`; a password never comes back.
- A body over `max_request_body_bytes` answers 413 before anything parses it (`BodyLimit`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.rest_docs import ErrorBody, FieldError, ValidationErrorBody
from haven.errors import HavenError, InvalidRequest, RequestTooLarge

# Longest input, location part or message echoed in a 422, in characters.
MAX_ECHO_CHARS = 64
# Messages are pydantic's or the validators' own words, never the input; bounded all the same.
MAX_MESSAGE_CHARS = 200
# Field names whose value is never echoed, whatever the error (matched as substrings).
SECRET_NAME_PARTS = ("password", "passphrase", "secret", "token")


def error_response(error: HavenError) -> JSONResponse:
    headers: dict[str, str] = {}
    if error.http_status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if error.retry_after is not None:
        # HTTP wants whole seconds; rounding up never invites a retry that is refused again.
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return JSONResponse(
        status_code=error.http_status,
        content=ErrorBody.of(error).model_dump(exclude_none=True),
        headers=headers or None,
    )


def _cut(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_secret(loc: tuple[Any, ...]) -> bool:
    return any(
        isinstance(part, str) and any(word in part.lower() for word in SECRET_NAME_PARTS)
        for part in loc
    )


def field_error(raw: dict[str, Any]) -> FieldError:
    """One pydantic error, stripped of everything that could carry a secret or a megabyte."""
    loc = tuple(raw.get("loc", ()))
    value = raw.get("input")
    echo: str | int | float | bool | None = None
    # Objects and lists are never echoed: the object of a model-level error holds every field,
    # the password included.
    if not _is_secret(loc) and isinstance(value, str | int | float | bool):
        echo = _cut(value) if isinstance(value, str) else value
    return FieldError(
        loc=[part if isinstance(part, int) else _cut(str(part)) for part in loc],
        msg=_cut(str(raw.get("msg", "")), MAX_MESSAGE_CHARS),
        type=_cut(str(raw.get("type", ""))),
        input=echo,
    )


def validation_response(error: RequestValidationError) -> JSONResponse:
    body = ValidationErrorBody.of(InvalidRequest(), [field_error(e) for e in error.errors()])
    return JSONResponse(status_code=422, content=body.model_dump(exclude_none=True))


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuses HTTP request bodies over `limit()` bytes with 413, by `Content-Length` before any
    of the body is read, and by counting for a body sent in chunks without one."""

    def __init__(self, app: ASGIApp, limit: Callable[[], int]) -> None:
        self._app = app
        self._limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        limit = self._limit()
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await error_response(RequestTooLarge())(scope, receive, send)
            return
        received = 0
        exceeded = started = False

        async def counted() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the route's own answer to the cut-off body; 413 goes instead
            started = True
            await send(message)

        try:
            await self._app(scope, counted, guarded)
        except _TooLarge:
            pass
        if exceeded and not started:
            await error_response(RequestTooLarge())(scope, receive, send)


def install(app: FastAPI, body_limit: Callable[[], int]) -> None:
    @app.exception_handler(HavenError)
    async def _haven_error(_: Request, error: HavenError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return validation_response(error)

    app.add_middleware(BodyLimit, limit=body_limit)
