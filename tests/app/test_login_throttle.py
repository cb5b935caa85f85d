"""Login and registration throttling, shared by Gateway replicas through the database.

Runs on SQLite and PostgreSQL: the counters are rows both must update under concurrency."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.app.conftest import Harness, SettingsFactory, build_harness
from tests.rest_client import PASSWORD

WRONG = "not the password at all"


def _login(harness: Harness, username: str, password: str) -> tuple[int, dict[str, str], dict]:
    response = harness.client.post("/auth/login", json={"username": username, "password": password})
    return response.status_code, dict(response.headers), response.json()


@pytest.fixture
def throttled(app_settings: SettingsFactory) -> Iterator[Harness]:
    settings = app_settings(
        login_failures_per_account=3, login_failures_per_address=50, login_lockout_base_s=30
    )
    yield from build_harness(settings)


def test_wrong_password_answers_invalid_credentials_not_invalid_token(harness: Harness) -> None:
    harness.register("ana")
    status, _, body = _login(harness, "ana", WRONG)
    assert status == 401 and body["code"] == "invalid_credentials"


def test_after_the_failure_limit_even_the_right_password_gets_429_with_retry_after(
    throttled: Harness,
) -> None:
    throttled.register("ana")
    assert [_login(throttled, "ana", WRONG)[0] for _ in range(3)] == [401, 401, 401]
    status, headers, body = _login(throttled, "ana", PASSWORD)
    assert status == 429
    assert body["code"] == "too_many_login_attempts" and body["retryable"] is True
    assert 25 <= int(headers["retry-after"]) <= 30
    assert 25 <= body["retry_after"] <= 30


def test_an_unknown_username_is_throttled_exactly_like_a_known_one(throttled: Harness) -> None:
    throttled.register("ana")
    known = [_login(throttled, "ana", WRONG) for _ in range(4)]
    unknown = [_login(throttled, "nobody", WRONG) for _ in range(4)]
    assert [(s, b["code"]) for s, _, b in known] == [(s, b["code"]) for s, _, b in unknown]
    assert [s for s, _, _ in unknown] == [401, 401, 401, 429]


def test_a_successful_login_resets_the_account_count(throttled: Harness) -> None:
    throttled.register("ana")
    for _ in range(2):
        assert _login(throttled, "ana", WRONG)[0] == 401
    assert _login(throttled, "ana", PASSWORD)[0] == 200
    assert [_login(throttled, "ana", WRONG)[0] for _ in range(2)] == [401, 401]
    assert _login(throttled, "ana", PASSWORD)[0] == 200


def test_one_address_is_throttled_across_accounts(app_settings: SettingsFactory) -> None:
    settings = app_settings(login_failures_per_account=100, login_failures_per_address=4)
    for harness in build_harness(settings):
        statuses = [_login(harness, f"user{i}", WRONG)[0] for i in range(5)]
        assert statuses == [401, 401, 401, 401, 429]


def test_two_gateway_replicas_sharing_a_database_share_the_limit(
    app_settings: SettingsFactory,
) -> None:
    settings = app_settings(login_failures_per_account=4, login_failures_per_address=50)
    with ExitStack() as stack:
        first, second = (stack.enter_context(_running(build_harness(settings))) for _ in range(2))
        first.register("ana")
        statuses = [_login(replica, "ana", WRONG)[0] for replica in (first, second) * 2]
        assert statuses == [401, 401, 401, 401]
        assert _login(first, "ana", PASSWORD)[0] == 429
        assert _login(second, "ana", PASSWORD)[0] == 429


def test_registration_is_limited_per_address(app_settings: SettingsFactory) -> None:
    for harness in build_harness(app_settings(registrations_per_address_per_hour=2)):
        for name in ("ana", "bob"):
            harness.register(name)
        response = harness.client.post(
            "/auth/register", json={"username": "cat", "password": PASSWORD}
        )
        assert response.status_code == 429
        assert response.json()["code"] == "too_many_registrations"
        assert int(response.headers["retry-after"]) > 3000


class _running:
    """A harness generator as a context manager (the test client starts and stops with it)."""

    def __init__(self, harnesses: Iterator[Harness]) -> None:
        self._harnesses = harnesses

    def __enter__(self) -> Harness:
        return next(self._harnesses)

    def __exit__(self, *_: object) -> None:
        for _finished in self._harnesses:
            pass
