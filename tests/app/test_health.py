"""/readyz says "starting" until the models first answer, "unavailable" when they stop."""

from __future__ import annotations

import dataclasses

from fastapi.testclient import TestClient

from deployments.gateway import create_app
from tests.app.conftest import Harness
from tests.conftest import SQLITE_ONLY

pytestmark = SQLITE_ONLY


def test_readiness_goes_starting_then_ready_then_unavailable(harness: Harness) -> None:
    answers = [False, True, False]

    async def scripted() -> bool:
        return answers.pop(0)

    services = dataclasses.replace(harness.services, readiness=scripted)
    # Not started as a context manager: the harness owns the store and closes it.
    client = TestClient(create_app(services))
    seen = [client.get("/readyz") for _ in range(3)]
    assert [(r.status_code, r.json()["status"]) for r in seen] == [
        (503, "starting"),
        (200, "ready"),
        (503, "unavailable"),
    ]


def test_a_failing_readiness_check_counts_as_starting_before_the_first_success(
    harness: Harness,
) -> None:
    async def broken() -> bool:
        raise RuntimeError("classifier replica not up yet")

    services = dataclasses.replace(harness.services, readiness=broken)
    response = TestClient(create_app(services)).get("/readyz")
    assert response.status_code == 503 and response.json() == {"status": "starting"}


def test_healthz_answers_ok_whatever_the_models_do(harness: Harness) -> None:
    async def broken() -> bool:
        raise RuntimeError("down")

    services = dataclasses.replace(harness.services, readiness=broken)
    response = TestClient(create_app(services)).get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
