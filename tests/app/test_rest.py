"""REST behaviour of the Gateway app: accounts, sessions, stored messages, health."""

from __future__ import annotations

import pytest

from tests.app.conftest import Harness
from tests.rest_client import PASSWORD


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_register_returns_201_with_id_and_username(harness: Harness) -> None:
    response = harness.client.post("/auth/register", json={"username": "ana", "password": PASSWORD})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "username", "locale"} and body["username"] == "ana"
    assert body["locale"] is None


def test_register_taken_username_returns_409_even_in_other_case(harness: Harness) -> None:
    harness.register("ana")
    again = harness.client.post("/auth/register", json={"username": "ANA", "password": PASSWORD})
    assert again.status_code == 409
    assert again.json()["code"] == "username_taken"


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ana", "password": "short"},
        {"username": "ana", "password": "1234567890123"},
        {"username": "ana", "password": "password123"},
        {"username": "ana", "password": "aaaaaaaaaaaaaaa"},
        {"username": "ana", "password": "my-ana-password"},
        {"username": "a", "password": PASSWORD},
        {"username": "white space", "password": PASSWORD},
        {"username": "ana"},
        {"username": "ana", "password": PASSWORD, "admin": True},
    ],
)
def test_register_weak_or_malformed_body_returns_422(harness: Harness, body: dict) -> None:
    assert harness.client.post("/auth/register", json=body).status_code == 422


def test_login_returns_bearer_token(harness: Harness) -> None:
    harness.register("ana")
    response = harness.client.post("/auth/login", json={"username": "ana", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == harness.services.settings.access_token_ttl_s
    assert harness.services.tokens.verify(body["access_token"]).user_id


def test_login_wrong_password_and_unknown_user_answer_the_same_401(harness: Harness) -> None:
    harness.register("ana")
    wrong = harness.client.post("/auth/login", json={"username": "ana", "password": "nope-nope-1"})
    unknown = harness.client.post(
        "/auth/login", json={"username": "bob", "password": "nope-nope-1"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_session_lifecycle_create_list_read_delete(harness: Harness) -> None:
    token = harness.register("ana")
    created = harness.client.post("/sessions", headers=_auth(token))
    assert created.status_code == 201 and set(created.json()) == {"id", "created_at"}
    session_id = created.json()["id"]
    listed = harness.client.get("/sessions", headers=_auth(token)).json()
    assert [s["id"] for s in listed] == [session_id]
    assert harness.messages(token, session_id) == []
    deleted = harness.client.delete(f"/sessions/{session_id}", headers=_auth(token))
    assert deleted.status_code == 204
    assert harness.client.get("/sessions", headers=_auth(token)).json() == []
    # The language model drops what it kept of the conversation for its next turn.
    assert harness.generator.forgotten == [session_id]


def test_other_users_session_answers_404_never_403(harness: Harness) -> None:
    owner, other = harness.register("ana"), harness.register("bob")
    session_id = harness.new_session(owner)
    read = harness.client.get(f"/sessions/{session_id}/messages", headers=_auth(other))
    delete = harness.client.delete(f"/sessions/{session_id}", headers=_auth(other))
    missing = harness.client.get(
        "/sessions/00000000-0000-0000-0000-000000000000/messages", headers=_auth(other)
    )
    assert read.status_code == delete.status_code == missing.status_code == 404
    assert read.json() == missing.json()
    assert harness.client.get("/sessions", headers=_auth(other)).json() == []
    assert harness.messages(owner, session_id) == []  # the owner's session is untouched
    assert harness.generator.forgotten == []


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic abc"}]
)
def test_session_routes_require_a_valid_bearer_token(harness: Harness, headers: dict) -> None:
    response = harness.client.get("/sessions", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "invalid_token"


def test_health_and_readiness(harness: Harness) -> None:
    assert harness.client.get("/healthz").json() == {"status": "ok"}
    assert harness.client.get("/readyz").status_code == 200


def test_openapi_documents_every_route(harness: Harness) -> None:
    paths = harness.client.get("/openapi.json").json()["paths"]
    for path in ("/auth/register", "/auth/login", "/sessions", "/sessions/{session_id}/messages"):
        assert path in paths
    assert harness.client.get("/docs").status_code == 200
