"""How the REST API describes itself in OpenAPI: Haven's error body, the error responses of each
route, built from the typed errors the route can raise.

The error bodies are what deployments/http_errors.py writes; tests/app/test_openapi.py
checks real answers against the schema documented here.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from haven.errors import HavenError

BEARER_DESCRIPTION = (
    "An access token from `POST /auth/login`, as `Authorization: Bearer <token>`. A missing, "
    "invalid, expired or revoked token gets 401 with `WWW-Authenticate: Bearer`."
)

_STATUS_TEXT = {
    401: "The credentials or the bearer token were refused.",
    403: "The token is valid, but its account's role may not do this.",
    404: "Not found.",
    409: "In conflict with what exists.",
    413: "The body is larger than the limit (64 KiB by default, `HAVEN_MAX_REQUEST_BODY_BYTES`); "
    "refused before it is read.",
    429: "Too many requests; retry later.",
    503: "Temporarily unavailable; retry later.",
}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "Always `Bearer`: the scheme to authenticate with.",
        "schema": {"type": "string", "enum": ["Bearer"]},
    }
}


class ErrorBody(BaseModel):
    """The body of every error Haven itself answers with (the 422 of a malformed request is
    `ValidationErrorBody`)."""

    model_config = ConfigDict(extra="forbid")

    detail: str = Field(description="Fixed text, safe to show; never parse it.")
    code: str = Field(
        description="A stable machine code, the same as in the WebSocket `error` event; switch "
        "on this."
    )
    retryable: bool = Field(description="Whether the same request can succeed later.")
    retry_after: float | None = Field(
        default=None,
        description="Seconds to wait before retrying, when known (also the `Retry-After` "
        "header, rounded up).",
    )

    @classmethod
    def of(cls, error: HavenError) -> ErrorBody:
        return cls(
            detail=error.message,
            code=error.code,
            retryable=error.retryable,
            retry_after=error.retry_after,
        )


class FieldError(BaseModel):
    """One problem with the request (pydantic's error, stripped of what the person typed)."""

    model_config = ConfigDict(extra="forbid")

    loc: list[str | int] = Field(description='Where: e.g. `["body", "password"]`.')
    msg: str = Field(description="What is wrong, in words fit to show.")
    type: str = Field(description="pydantic's error type, e.g. `string_too_short`.")
    input: str | int | float | bool | None = Field(
        default=None,
        description="The value given, only for a field that is not secret and only when it "
        "is a scalar; strings are cut to 64 characters. Never present for a password.",
    )


class ValidationErrorBody(BaseModel):
    """The 422 body: a request that does not validate. `detail` lists each field's problem."""

    model_config = ConfigDict(extra="forbid")

    detail: list[FieldError] = Field(description="One entry per problem.")
    code: str = Field(description="Always `invalid_request`.")
    retryable: bool = Field(description="Always false: the same request fails again.")

    @classmethod
    def of(cls, error: HavenError, fields: list[FieldError]) -> ValidationErrorBody:
        return cls(detail=fields, code=error.code, retryable=error.retryable)


def validation_responses() -> dict[int | str, dict[str, Any]]:
    """The 422 of a route that takes input, replacing FastAPI's own (which echoes input)."""
    return {
        422: {
            "model": ValidationErrorBody,
            "description": "The request does not validate; nothing was changed. Code: "
            "`invalid_request`.",
        }
    }


def error_responses(*errors: HavenError) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can fail with these errors: one response per HTTP
    status, with an example of each error's body."""
    by_status: dict[int, list[HavenError]] = defaultdict(list)
    for error in errors:
        by_status[error.http_status].append(error)
    responses: dict[int | str, dict[str, Any]] = {}
    for status_code, group in sorted(by_status.items()):
        codes = ", ".join(dict.fromkeys(f"`{error.code}`" for error in group))
        examples = {
            type(error).__name__: {
                "summary": error.message,
                "value": ErrorBody.of(error).model_dump(),
            }
            for error in group
        }
        response: dict[str, Any] = {
            "model": ErrorBody,
            "description": f"{_STATUS_TEXT.get(status_code, 'Failed.')} Codes: {codes}.",
            "content": {"application/json": {"examples": examples}},
        }
        if status_code == 401:
            response["headers"] = _WWW_AUTHENTICATE
        responses[status_code] = response
    return responses
