"""The REST calls most tests start with, over any httpx client (the in-process TestClient or a
client of a real server)."""

from __future__ import annotations

from typing import Any

import httpx

PASSWORD = "correct horse battery"


class RestSteps:
    def __init__(self, rest: httpx.Client) -> None:
        self.rest = rest

    def register(self, username: str, locale: str | None = None) -> str:
        """A new account, logged in: its access token."""
        body = {"username": username, "password": PASSWORD}
        if locale is not None:
            body["locale"] = locale
        created = self.rest.post("/auth/register", json=body)
        assert created.status_code == 201, created.text
        return self.login(username)

    def login(self, username: str) -> str:
        """A new access token for an existing account."""
        login = self.rest.post("/auth/login", json={"username": username, "password": PASSWORD})
        assert login.status_code == 200, login.text
        token: str = login.json()["access_token"]
        return token

    def new_session(self, token: str) -> str:
        response = self.rest.post("/sessions", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 201, response.text
        session_id: str = response.json()["id"]
        return session_id

    def messages(self, token: str, session_id: str) -> list[dict[str, Any]]:
        response = self.rest.get(
            f"/sessions/{session_id}/messages", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result
