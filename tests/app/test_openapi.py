"""The REST API's OpenAPI document is complete, committed, and true to what the app answers.

The database does not shape any of this (the bodies come from the routes' models and the
`HavenError` handler), so these run on SQLite only."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any, Protocol

import fastapi.routing
import pytest
import yaml
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute

from deployments.gateway import create_app
from haven import openapi
from tests.app.conftest import Harness
from tests.app.wire import connect, send, until
from tests.conftest import SQLITE_ONLY
from tests.paths import ROOT
from tests.rest_client import PASSWORD
from tests.schema_check import validator_for

pytestmark = SQLITE_ONLY


class Answer(Protocol):
    """An HTTP response, from whichever client the TestClient is built on."""

    @property
    def status_code(self) -> int: ...

    def json(self) -> Any: ...


# They take no input and no token, so no client error can happen; readiness documents its 503.
NO_CLIENT_ERRORS = {"/healthz", "/readyz"}


@pytest.fixture
def schema(harness: Harness) -> dict[str, Any]:
    served: dict[str, Any] = harness.client.get("/openapi.json").json()
    return served


def _app(harness: Harness) -> FastAPI:
    app = harness.client.app
    assert isinstance(app, FastAPI)
    return app


def _app_routes(app: FastAPI) -> list[tuple[BaseRoute, str, set[str], bool]]:
    """(route, path, methods, in schema) for every route, those of included routers too (newer
    FastAPI keeps an included router as one entry, walked the way its OpenAPI walks it)."""
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    contexts: list[Any] = list(walk(app.routes)) if walk else list(app.routes)
    return [
        (
            getattr(context, "original_route", context),
            context.path_format,
            set(getattr(context, "methods", None) or ()),
            bool(getattr(context, "include_in_schema", False)),
        )
        for context in contexts
    ]


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def _check_body(schema: dict[str, Any], path: str, method: str, response: Answer) -> dict[str, Any]:
    """Validates the answer against the schema documented for its path, method and status;
    returns the documented response."""
    status = str(response.status_code)
    documented = schema["paths"][path][method]["responses"].get(status)
    assert documented is not None, f"{method.upper()} {path} answered an undocumented {status}"
    body = ("content", "application/json", "schema")
    validator_for(schema, _pointer("paths", path, method, "responses", status, *body)).validate(
        response.json()
    )
    result: dict[str, Any] = documented
    return result


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_served_schema_is_the_committed_docs_openapi_json(schema: dict[str, Any]) -> None:
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert committed == schema, "docs/openapi.json is out of date: python -m haven.openapi --write"
    assert openapi.build() == schema


def test_every_route_is_documented_with_success_and_errors(
    harness: Harness, schema: dict[str, Any]
) -> None:
    routes = [
        (path, methods)
        for route, path, methods, in_schema in _app_routes(_app(harness))
        if isinstance(route, APIRoute) and in_schema
    ]
    assert len(routes) >= 9
    tags = {tag["name"]: tag.get("description") for tag in schema["tags"]}
    for path, methods in routes:
        for method in methods - {"HEAD"}:
            operation = schema["paths"][path][method.lower()]
            where = f"{method} {path}"
            assert operation["summary"] and operation["description"], where
            assert operation["tags"] and all(tags.get(tag) for tag in operation["tags"]), where
            codes = [int(code) for code in operation["responses"]]
            assert any(200 <= code < 300 for code in codes), where
            if path not in NO_CLIENT_ERRORS:
                assert any(400 <= code < 500 for code in codes), where
            for code, response in operation["responses"].items():
                assert response["description"], (where, code)
                if code != "204":
                    assert "schema" in response["content"]["application/json"], (where, code)
            if operation.get("security"):
                assert operation["security"] == [{"bearerAuth": []}], where
                refused = operation["responses"]["401"]
                assert "WWW-Authenticate" in refused["headers"], where
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_the_websocket_route_is_the_asyncapi_channel(harness: Harness) -> None:
    routes = _app_routes(_app(harness))
    sockets = [path for route, path, _, _ in routes if isinstance(route, APIWebSocketRoute)]
    asyncapi = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text(encoding="utf-8"))
    assert sockets == [channel["address"] for channel in asyncapi["channels"].values()]


def test_documented_error_examples_are_valid_error_bodies(schema: dict[str, Any]) -> None:
    validator = validator_for(schema, "#/components/schemas/ErrorBody")
    seen = 0
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            for code, response in operation["responses"].items():
                examples = response.get("content", {}).get("application/json", {}).get("examples")
                for example in (examples or {}).values():
                    validator.validate(example["value"])
                    seen += 1
                    assert code.startswith("4"), (path, code)
    assert seen >= 10
    assert not validator.is_valid({"detail": "x", "code": "y", "retryable": False, "more": 1})


def test_refused_token_answers_the_documented_401(harness: Harness, schema: dict[str, Any]) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}):
        response = harness.client.get("/sessions", headers=headers)
        assert response.status_code == 401
        documented = _check_body(schema, "/sessions", "get", response)
        assert (
            response.headers["www-authenticate"]
            in documented["headers"]["WWW-Authenticate"]["schema"]["enum"]
        )
        examples = documented["content"]["application/json"]["examples"].values()
        assert response.json() in [example["value"] for example in examples]


ErrorCase = Callable[[Harness], tuple[str, str, Answer]]


def _wrong_password(harness: Harness) -> tuple[str, str, Answer]:
    harness.register("ana")
    body = {"username": "ana", "password": "not the password"}
    return "/auth/login", "post", harness.client.post("/auth/login", json=body)


def _taken_username(harness: Harness) -> tuple[str, str, Answer]:
    harness.register("ana")
    body = {"username": "Ana", "password": PASSWORD}
    return "/auth/register", "post", harness.client.post("/auth/register", json=body)


def _malformed_body(harness: Harness) -> tuple[str, str, Answer]:
    body = {"username": "ana", "password": "short"}
    return "/auth/register", "post", harness.client.post("/auth/register", json=body)


def _unknown_session(harness: Harness) -> tuple[str, str, Answer]:
    token = harness.register("ana")
    response = harness.client.get("/sessions/nope/messages", headers=_auth(token))
    return "/sessions/{session_id}/messages", "get", response


def _deleted_twice(harness: Harness) -> tuple[str, str, Answer]:
    token = harness.register("ana")
    session_id = harness.new_session(token)
    assert harness.client.delete(f"/sessions/{session_id}", headers=_auth(token)).status_code == 204
    response = harness.client.delete(f"/sessions/{session_id}", headers=_auth(token))
    return "/sessions/{session_id}", "delete", response


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        (_wrong_password, 401, "invalid_credentials"),
        (_taken_username, 409, "username_taken"),
        (_malformed_body, 422, None),
        (_unknown_session, 404, "session_not_found"),
        (_deleted_twice, 404, "session_not_found"),
    ],
)
def test_failing_calls_answer_the_documented_error_schema(
    harness: Harness, schema: dict[str, Any], case: ErrorCase, status: int, code: str | None
) -> None:
    path, method, response = case(harness)
    assert response.status_code == status
    _check_body(schema, path, method, response)
    if code is not None:
        assert response.json()["code"] == code


def _request_example(schema: dict[str, Any], path: str) -> Any:
    body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    (example,) = body["examples"].values()
    return example["value"]


def test_documented_requests_succeed_with_the_documented_models(
    harness: Harness, schema: dict[str, Any]
) -> None:
    client = harness.client
    created = client.post("/auth/register", json=_request_example(schema, "/auth/register"))
    assert created.status_code == 201, created.text
    _check_body(schema, "/auth/register", "post", created)
    login = client.post("/auth/login", json=_request_example(schema, "/auth/login"))
    assert login.status_code == 200, login.text
    _check_body(schema, "/auth/login", "post", login)
    token = login.json()["access_token"]
    session = client.post("/sessions", headers=_auth(token))
    _check_body(schema, "/sessions", "post", session)
    _check_body(schema, "/sessions", "get", client.get("/sessions", headers=_auth(token)))
    messages = client.get(f"/sessions/{session.json()['id']}/messages", headers=_auth(token))
    _check_body(schema, "/sessions/{session_id}/messages", "get", messages)
    _check_body(schema, "/healthz", "get", client.get("/healthz"))
    _check_body(schema, "/readyz", "get", client.get("/readyz"))
    assert client.post("/auth/logout", headers=_auth(token)).status_code == 204
    after = client.get("/sessions", headers=_auth(token))
    assert after.json()["code"] == "logged_out"
    _check_body(schema, "/sessions", "get", after)


def test_readiness_failure_answers_the_documented_503(
    harness: Harness, schema: dict[str, Any]
) -> None:
    async def not_ready() -> bool:
        return False

    services = dataclasses.replace(harness.services, readiness=not_ready)
    # Not started as a context manager: the harness owns the store and closes it.
    response = TestClient(create_app(services)).get("/readyz")
    assert response.status_code == 503
    assert _check_body(schema, "/readyz", "get", response)
    assert response.json() == {"status": "starting"}  # never ready yet


def test_a_turn_answers_what_both_documents_describe(
    harness: Harness, schema: dict[str, Any]
) -> None:
    asyncapi = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text(encoding="utf-8"))
    token = harness.register("ana")
    session_id = harness.new_session(token)
    with connect(harness, token) as ws:
        send(ws, session_id, "I feel anxious today", client_message_id="c-1")
        events = until(ws, "assistant_message_complete")
        ws.send_json({"type": "ping"})
        events += until(ws, "pong")
    for event in events:
        payload = asyncapi["components"]["messages"][event["type"]]["payload"]["$ref"]
        validator_for(asyncapi, payload, draft="7").validate(event)
    assert {event["type"] for event in events} >= {
        "connection",
        "user_message",
        "assistant_message_start",
        "assistant_message_chunk",
        "assistant_message_complete",
        "pong",
    }
    stored = harness.client.get(f"/sessions/{session_id}/messages", headers=_auth(token))
    _check_body(schema, "/sessions/{session_id}/messages", "get", stored)
    assert [message["role"] for message in stored.json()] == ["user", "assistant"]


def test_role_and_queue_answers_match_the_documented_schema(
    harness: Harness, schema: dict[str, Any]
) -> None:
    from tests.app.staff import register_as

    person = harness.register("ana")
    person_id = harness.services.tokens.verify(person).user_id
    admin = register_as(harness, "root-admin", "admin")
    counsellor = register_as(harness, "cara", "counsellor")
    client = harness.client
    changed = client.patch(f"/users/{person_id}", json={"role": "user"}, headers=_auth(admin))
    assert changed.status_code == 200
    _check_body(schema, "/users/{user_id}", "patch", changed)
    refused = client.patch(f"/users/{person_id}", json={"role": "admin"}, headers=_auth(person))
    assert refused.status_code == 403
    _check_body(schema, "/users/{user_id}", "patch", refused)
    queue = client.get("/counsellor/queue", headers=_auth(counsellor))
    assert queue.status_code == 200
    _check_body(schema, "/counsellor/queue", "get", queue)
    forbidden = client.get("/counsellor/queue", headers=_auth(person))
    assert forbidden.status_code == 403
    _check_body(schema, "/counsellor/queue", "get", forbidden)
