"""Accounts with a role, for the app tests: registered over REST, promoted in the database (as
`haven users create --role` would), then logged in so the token carries the role."""

from __future__ import annotations

import asyncio

from haven.roles import Role
from haven.storage.store import Store
from tests.app.conftest import Harness


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_id(harness: Harness, token: str) -> str:
    return harness.services.tokens.verify(token).user_id


def set_role(harness: Harness, account_id: str, role: Role) -> None:
    async def change() -> None:
        async with Store.from_url(harness.services.settings.resolved_database_url) as store:
            assert await store.set_role(account_id, role) is not None

    asyncio.run(change())


def register_as(harness: Harness, username: str, role: Role) -> str:
    """A new account with `role`, logged in: its access token."""
    set_role(harness, user_id(harness, harness.register(username)), role)
    return harness.login(username)
