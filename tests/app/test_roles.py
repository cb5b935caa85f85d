"""Roles over REST: login puts the stored role in the token; only an admin changes a role
(`PATCH /users/{id}`), and what a role grants is checked against the stored account."""

from __future__ import annotations

from typing import Any

import pytest

from tests.app.conftest import Harness
from tests.app.staff import auth, register_as, set_role, user_id


def _patch(harness: Harness, token: str, account_id: str, body: Any) -> Any:
    return harness.client.patch(f"/users/{account_id}", json=body, headers=auth(token))


def test_login_token_carries_the_stored_role(harness: Harness) -> None:
    person = harness.register("ana")
    assert harness.services.tokens.verify(person).role == "user"
    counsellor = register_as(harness, "cara", "counsellor")
    assert harness.services.tokens.verify(counsellor).role == "counsellor"


def test_admin_makes_a_user_a_counsellor_and_their_next_login_says_so(harness: Harness) -> None:
    admin = register_as(harness, "root-admin", "admin")
    ana = user_id(harness, harness.register("ana"))
    response = _patch(harness, admin, ana, {"role": "counsellor"})
    assert response.status_code == 200, response.text
    assert response.json() == {"id": ana, "username": "ana", "role": "counsellor"}
    assert harness.services.tokens.verify(harness.login("ana")).role == "counsellor"


@pytest.mark.parametrize("role", ["user", "counsellor"])
def test_only_an_admin_changes_roles(harness: Harness, role: Any) -> None:
    caller = register_as(harness, "someone", role)
    ana = user_id(harness, harness.register("ana"))
    response = _patch(harness, caller, ana, {"role": "admin"})
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden" and response.json()["retryable"] is False
    assert harness.services.tokens.verify(harness.login("ana")).role == "user"


def test_a_user_cannot_make_themselves_admin(harness: Harness) -> None:
    token = harness.register("ana")
    response = _patch(harness, token, user_id(harness, token), {"role": "admin"})
    assert response.status_code == 403


def test_an_admin_cannot_change_their_own_role(harness: Harness) -> None:
    admin = register_as(harness, "root-admin", "admin")
    response = _patch(harness, admin, user_id(harness, admin), {"role": "user"})
    assert response.status_code == 403


def test_a_token_issued_as_admin_stops_working_once_the_role_is_taken_away(
    harness: Harness,
) -> None:
    admin = register_as(harness, "root-admin", "admin")
    set_role(harness, user_id(harness, admin), "user")
    ana = user_id(harness, harness.register("ana"))
    assert _patch(harness, admin, ana, {"role": "admin"}).status_code == 403


def test_unknown_account_answers_404_not_found(harness: Harness) -> None:
    admin = register_as(harness, "root-admin", "admin")
    response = _patch(harness, admin, "00000000-0000-0000-0000-000000000000", {"role": "user"})
    assert response.status_code == 404 and response.json()["code"] == "not_found"


@pytest.mark.parametrize("body", [{"role": "root"}, {"role": "admin", "username": "x"}, {}])
def test_malformed_role_change_answers_422(harness: Harness, body: Any) -> None:
    admin = register_as(harness, "root-admin", "admin")
    ana = user_id(harness, harness.register("ana"))
    response = _patch(harness, admin, ana, body)
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"


def test_role_change_without_a_token_answers_401(harness: Harness) -> None:
    response = harness.client.patch("/users/x", json={"role": "admin"})
    assert response.status_code == 401
