"""REST error bodies never carry a password or unbounded input; oversized bodies get 413.

The bodies come from deployments/http_errors.py, not the database, so these run on SQLite only."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from tests.app.conftest import Harness
from tests.conftest import SQLITE_ONLY
from tests.rest_client import PASSWORD

pytestmark = SQLITE_ONLY

MARKER = "Zq7-secret-marker"


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


@pytest.mark.parametrize(
    ("path", "body"),
    [
        # Too easy to guess: a field-level error on the password itself.
        ("/auth/register", {"username": "weakpw2", "password": "password123"}),
        # Contains the username: a model-level error whose input is the whole object.
        ("/auth/register", {"username": "ana", "password": f"ana-{MARKER}"}),
        # Too long, and an extra field beside it.
        ("/auth/register", {"username": "ana", "password": MARKER * 20, "admin": True}),
        # Login with a malformed username: the password must not come back either.
        ("/auth/login", {"username": "a", "password": MARKER}),
    ],
)
def test_a_rejected_password_never_appears_in_the_422_body_or_the_logs(
    harness: Harness, logs: pytest.LogCaptureFixture, path: str, body: dict[str, object]
) -> None:
    response = harness.client.post(path, json=body)
    assert response.status_code == 422
    password = str(body["password"])
    assert password not in response.text
    assert MARKER not in response.text
    assert all(password not in record.getMessage() for record in logs.records)
    payload = response.json()
    assert payload["code"] == "invalid_request" and payload["retryable"] is False
    assert all("input" not in entry for entry in payload["detail"] if "password" in entry["loc"])


def test_the_422_names_the_field_and_what_is_wrong_with_it(harness: Harness) -> None:
    response = harness.client.post("/auth/register", json={"username": "ana", "password": "short"})
    (entry,) = response.json()["detail"]
    assert entry["loc"] == ["body", "password"]
    assert entry["type"] == "string_too_short"
    assert "at least 10" in entry["msg"]


def test_a_non_secret_input_is_echoed_cut_to_a_small_bound(harness: Harness) -> None:
    username = "x" * 5000
    response = harness.client.post(
        "/auth/register", json={"username": username, "password": PASSWORD}
    )
    (entry,) = response.json()["detail"]
    assert entry["loc"] == ["body", "username"]
    assert 0 < len(entry["input"]) <= 64
    assert len(response.content) < 1024


def test_a_huge_extra_field_name_is_not_echoed_in_full(harness: Harness) -> None:
    body = json.dumps({"username": "ana", "password": PASSWORD, "k" * 30_000: 1})
    response = harness.client.post(
        "/auth/register", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert len(response.content) < 1024


def test_a_10_mb_body_gets_a_small_413_before_it_is_parsed(harness: Harness) -> None:
    body = json.dumps({"username": "ana", "password": "p" * (10 * 1024 * 1024)})
    response = harness.client.post(
        "/auth/register", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"
    assert len(response.content) < 256


def test_a_chunked_body_without_length_is_cut_off_at_the_limit(harness: Harness) -> None:
    limit = harness.services.settings.max_request_body_bytes

    def chunks() -> Iterator[bytes]:
        for _ in range(limit // 1024 + 2):
            yield b" " * 1024

    response = harness.client.post(
        "/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def test_a_body_just_under_the_limit_is_parsed(harness: Harness) -> None:
    harness.register("ana")
    limit = harness.services.settings.max_request_body_bytes
    body = {"username": "ana", "password": PASSWORD}
    padded = json.dumps(body) + " " * (limit - len(json.dumps(body)))
    response = harness.client.post(
        "/auth/login", content=padded, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text


def test_no_other_refusal_carries_the_password_either(harness: Harness) -> None:
    harness.register("ana")
    secret = f"long-{MARKER}"
    answers = [
        harness.client.post("/auth/login", json={"username": "ana", "password": secret}),
        harness.client.post("/auth/register", json={"username": "ANA", "password": secret}),
        harness.client.post("/auth/login", json={"username": "nobody", "password": secret}),
    ]
    assert [a.status_code for a in answers] == [401, 409, 401]
    assert all(MARKER not in a.text and MARKER not in str(a.headers) for a in answers)
