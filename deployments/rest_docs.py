"""How the REST API describes itself in OpenAPI: Haven's error body, the error responses of each
route, built from the typed errors the route can raise.

The error body is what the Gateway's `HavenError` handler writes; tests/app/test_openapi.py
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
    404: "Not found.",
    409: "In conflict with what exists.",
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
    """The body of every error Haven itself answers with (not the 422 of a malformed request,
    which is FastAPI's `HTTPValidationError`)."""

    model_config = ConfigDict(extra="forbid")

    detail: str = Field(description="Fixed text, safe to show; never parse it.")
    code: str = Field(
        description="A stable machine code, the same as in the WebSocket `error` event; switch "
        "on this."
    )
    retryable: bool = Field(description="Whether the same request can succeed later.")

    @classmethod
    def of(cls, error: HavenError) -> ErrorBody:
        return cls(detail=error.message, code=error.code, retryable=error.retryable)


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
